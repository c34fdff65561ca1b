/*
 * insnprof: a QEMU TCG plugin that counts executed guest instructions per translated block,
 * keyed by the block's start address: a flat profile of where a firmware's instructions go.
 *
 * Same conventions as insncount.c (declares the plugin-API functions it uses itself; no QEMU
 * header, no glib). Build:
 *
 *   gcc -shared -fPIC -O2 -Wall -DPLUGIN_API=2 -o tools/insn-plugin/libinsnprof.so \
 *       tools/insn-plugin/insnprof.c
 *
 * At exit it writes one line per block address that ran, "prof: ADDR INSNS" (hex address,
 * executed instructions of blocks starting there), to the QEMU log. tools/profile-device.sh
 * maps the addresses to functions. Single vCPU only (Cortex-M), so no locking.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, vcpu_udata_cb_t cb,
                                                 enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, udata_cb_t cb, void *userdata);
extern void qemu_plugin_outs(const char *string);

__attribute__((visibility("default"))) int qemu_plugin_version = PLUGIN_API;

/* One record per translation (a block may be translated more than once; the script sums). */
struct block {
    uint64_t vaddr;
    uint64_t n;
    uint64_t runs;
};

static struct block *blocks;
static size_t used, cap;

static void on_tb_exec(unsigned int vcpu, void *b)
{
    (void)vcpu;
    ((struct block *)b)->runs++;
}

static void on_tb_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    if (used == cap) {
        /* Records are referenced by pointer from the callbacks: grow into a new chunk. */
        cap = 4096;
        blocks = calloc(cap, sizeof *blocks);
        used = 0;
        if (!blocks) {
            abort();
        }
    }
    struct block *b = &blocks[used++];
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_tb_exec, QEMU_PLUGIN_CB_NO_REGS, b);
}

/* Every chunk ever allocated, for the dump. */
static void dump_chunk(struct block *c, size_t n)
{
    char line[64];
    for (size_t i = 0; i < n; i++) {
        if (c[i].runs) {
            snprintf(line, sizeof line, "prof: %llx %llu\n", (unsigned long long)c[i].vaddr,
                     (unsigned long long)(c[i].runs * c[i].n));
            qemu_plugin_outs(line);
        }
    }
}

static struct block *chunks[4096];
static size_t chunk_used[4096];
static size_t nchunks;

static void on_tb_translate_tracked(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    struct block *before = blocks;
    on_tb_translate(id, tb);
    if (blocks != before && nchunks < 4096) {
        chunks[nchunks++] = blocks;
    }
    if (nchunks) {
        chunk_used[nchunks - 1] = used;
    }
}

static void on_plugin_exit(qemu_plugin_id_t id, void *unused)
{
    (void)id;
    (void)unused;
    for (size_t i = 0; i < nchunks; i++) {
        dump_chunk(chunks[i], chunk_used[i]);
    }
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    (void)argc;
    (void)argv;
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_translate_tracked);
    qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
    return 0;
}
