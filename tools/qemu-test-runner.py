#!/usr/bin/env python3
"""Cargo runner for the on-device tests (boards/ondevice-tests) under QEMU.

    tools/qemu-test-runner.py <elf> [libtest args: name filters, --list, --ignored]

An embedded-test binary carries its test table in the non-loaded `.embedded_test` section:
one symbol per test, whose name is JSON ({"name": ..., "ignored": ..., "should_panic": ...})
and whose value points at (test function, module path pointer, module path length). This
runner does what `probe-rs run` does on a board: boots the machine once per test with the
semihosting command line `run_addr <address of the test function>`, and judges the test by the
semihosting exit status (0 passed, anything else failed; a `should_panic` test the other way
round), under a timeout. It prints libtest-style lines and a `test result:` summary, and exits
101 when a test failed, like libtest. An ELF without a test table is booted once, plainly.

The machine comes from QEMU_MACHINE, else from the target in the ELF's path:
  thumbv7em → mps2-an386 (Cortex-M4; mps2-an500 is the Cortex-M7 on the same map)
  thumbv8m.main → mps2-an505 (Cortex-M33)   thumbv6m → microbit (Cortex-M0, SRAM 64 KiB)
  riscv32 → virt (qemu-system-riscv32, -bios none)
QEMU_TIMEOUT (seconds per boot, default 60), QEMU_ARM / QEMU_RISCV32 (binaries).
Python 3 standard library only.
"""
import json
import os
import struct
import subprocess
import sys
import time

MACHINES = {
    "mps2-an386": ["arm", "-machine", "mps2-an386", "-cpu", "cortex-m4"],
    "mps2-an500": ["arm", "-machine", "mps2-an500", "-cpu", "cortex-m7"],
    "mps2-an505": ["arm", "-machine", "mps2-an505", "-cpu", "cortex-m33"],
    "microbit": ["arm", "-machine", "microbit", "-global", "nrf51-soc.sram-size=0x10000"],
    "virt": ["riscv32", "-machine", "virt", "-bios", "none"],
}


def default_machine(elf):
    for key, machine in (("thumbv8m", "mps2-an505"), ("thumbv6m", "microbit"),
                         ("riscv32", "virt"), ("thumbv7em", "mps2-an386")):
        if key in elf:
            return machine
    return "mps2-an386"


def sections(data):
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise SystemExit("not a little-endian ELF32 file")
    (shoff,) = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    secs = []
    for i in range(shnum):
        name, typ, flags, addr, off, size, link, _info, _align, _ent = struct.unpack_from(
            "<IIIIIIIIII", data, shoff + i * shentsize)
        secs.append(dict(name=name, type=typ, flags=flags, addr=addr, off=off, size=size, link=link))
    strtab = secs[shstrndx]["off"]
    for s in secs:
        s["name"] = cstr(data, strtab + s["name"])
    return secs


def cstr(data, off):
    return data[off:data.index(b"\0", off)].decode("utf-8", "replace")


def loaded_bytes(data, secs, addr, n):
    for s in secs:
        if s["flags"] & 2 and s["type"] != 8 and s["addr"] <= addr < s["addr"] + s["size"]:
            o = s["off"] + addr - s["addr"]
            return data[o:o + n]
    return b""


def embedded_tests(path):
    """The test table, or None for an ELF that is not an embedded-test binary."""
    data = open(path, "rb").read()
    secs = sections(data)
    index = next((i for i, s in enumerate(secs) if s["name"] == ".embedded_test"), None)
    symtab = next((s for s in secs if s["type"] == 2), None)
    if index is None or symtab is None:
        return None
    table = secs[index]
    strtab = secs[symtab["link"]]["off"]
    tests = []
    for i in range(symtab["size"] // 16):
        st_name, value, _size, _info, _other, shndx = struct.unpack_from(
            "<IIIBBH", data, symtab["off"] + i * 16)
        name = cstr(data, strtab + st_name)
        if shndx != index or not name.startswith("{"):
            continue
        meta = json.loads(name)
        fn, mp_ptr, mp_len = struct.unpack_from("<III", data, table["off"] + value)
        module = loaded_bytes(data, secs, mp_ptr, mp_len).decode("utf-8", "replace")
        meta["full_name"] = (module + "::" if module else "") + meta["name"]
        meta["addr"] = fn
        tests.append(meta)
    return sorted(tests, key=lambda t: t["full_name"])


def qemu(elf, machine, args=(), timeout=None, capture=False):
    arch, *machine_args = MACHINES[machine]
    binary = os.environ.get("QEMU_ARM" if arch == "arm" else "QEMU_RISCV32", f"qemu-system-{arch}")
    semihosting = "enable=on,target=native" + "".join(f",arg={a}" for a in args)
    cmd = [binary, *machine_args, "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", semihosting, "-kernel", elf]
    timeout = timeout or float(os.environ.get("QEMU_TIMEOUT", "60"))
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE if capture else None,
                           stderr=subprocess.STDOUT if capture else None, timeout=timeout)
        return p.returncode, (p.stdout or b"").decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        return 124, (e.stdout or b"").decode("utf-8", "replace")
    except FileNotFoundError:
        pkg = "qemu-system-arm" if arch == "arm" else "qemu-system-riscv"
        raise SystemExit(f"error: {binary} not found; run tools/install-tools.sh ({pkg})")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    elf, args = sys.argv[1], sys.argv[2:]
    machine = os.environ.get("QEMU_MACHINE") or default_machine(elf)
    if machine not in MACHINES:
        raise SystemExit(f"error: unknown QEMU_MACHINE {machine!r}; one of {', '.join(MACHINES)}")
    tests = embedded_tests(elf)
    if tests is None:
        sys.exit(qemu(elf, machine)[0])
    if "--list" in args:
        for t in tests:
            print(f"{t['full_name']}: test")
        return
    filters = [a for a in args if not a.startswith("-")]
    run_ignored = "--ignored" in args or "--include-ignored" in args
    selected = [t for t in tests if not filters or any(f in t["full_name"] for f in filters)]
    print(f"\nrunning {len(selected)} tests on QEMU {machine}")
    passed = failed = ignored = 0
    failures = []
    start = time.time()
    for t in selected:
        if t.get("ignored") and not run_ignored:
            print(f"test {t['full_name']} ... ignored")
            ignored += 1
            continue
        rc, out = qemu(elf, machine, ("run_addr", str(t["addr"])), t.get("timeout"), capture=True)
        ok = (rc not in (0, 124)) if t.get("should_panic") else rc == 0
        for line in out.splitlines():
            print(f"    {line}")
        if ok:
            passed += 1
            print(f"test {t['full_name']} ... ok")
        else:
            failed += 1
            print(f"test {t['full_name']} ... FAILED ({'timeout' if rc == 124 else f'exit code {rc}'})")
            failures.append(t["full_name"])
    status = "ok" if failed == 0 else "FAILED"
    print(f"\ntest result: {status}. {passed} passed; {failed} failed; {ignored} ignored; "
          f"0 measured; {len(tests) - len(selected)} filtered out; finished in {time.time() - start:.2f}s\n")
    sys.exit(0 if failed == 0 else 101)


if __name__ == "__main__":
    main()
