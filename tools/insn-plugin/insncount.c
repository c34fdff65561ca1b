/*
 * insncount: a minimal QEMU TCG plugin that counts executed guest instructions.
 *
 * Why it exists: Debian ships QEMU with plugin support but without the example plugins
 * (no libinsn.so) and without qemu-plugin.h, and DWT CYCCNT is not emulated on Cortex-M.
 * An exact executed-instruction count is the one deterministic performance figure QEMU
 * gives, so tinykd measures "instructions per inference" with it.
 *
 * It declares the five plugin-API functions it uses itself, so it needs neither the QEMU
 * header nor glib. Build (0.3 s with gcc):
 *
 *   gcc -shared -fPIC -O2 -Wall -DPLUGIN_API=2 -o tools/insn-plugin/libinsncount.so \
 *       tools/insn-plugin/insncount.c
 *
 * PLUGIN_API must lie in the range the QEMU accepts: 2 for QEMU 10.0 (accepts 2..4),
 * 1 for QEMU 7.2 (accepts 0..1). Use: `-plugin libinsncount.so -d plugin [-D log]`;
 * at exit it writes "insns: N" and "tbs: M" to the QEMU log (stderr unless -D is given).
 *
 * The count covers the whole guest run, reset to semihosting exit. Only single-vCPU
 * machines are supported (a Cortex-M has one core), so the counters need no locking.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef PLUGIN_API
#define PLUGIN_API 2
#endif

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
typedef struct qemu_info_t qemu_info_t;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*udata_cb_t)(qemu_plugin_id_t id, void *userdata);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, tb_trans_cb_t cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb, void *userdata);
extern void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = PLUGIN_API;

static uint64_t executed_insns;
static uint64_t executed_tbs;

/* Runs every time a translated block executes; `n` is the block's instruction count,
 * stored as the callback's user data when the block was translated. */
static void on_tb_exec(unsigned int vcpu, void *n)
{
    (void)vcpu;
    executed_insns += (uintptr_t)n;
    executed_tbs++;
}

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)(uintptr_t)n);
}

static void on_plugin_exit(qemu_plugin_id_t id, void *unused)
{
    (void)id;
    (void)unused;
    char line[96];
    snprintf(line, sizeof line, "insns: %llu\ntbs: %llu\n", (unsigned long long)executed_insns,
             (unsigned long long)executed_tbs);
    qemu_plugin_outs(line);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate);
    qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
    return 0;
}
