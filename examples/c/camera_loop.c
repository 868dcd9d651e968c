/*
 * camera_loop.c — a simulated camera ISP stream through libbridge.
 *
 *   camera_loop MODEL.onnx [FRAMES [WIDTH HEIGHT [MAX_RSS_GROWTH_MIB]]]
 *
 * Restores FRAMES (default 60) synthetic NV12 frames of WIDTH×HEIGHT (default 320×240) with one
 * restorer and two buffers allocated once and reused, like an ISP's frame pool. Prints frames
 * per second, and checks that memory stays flat: the resident set size (from /proc/self/statm)
 * after the last frame may exceed the one after the warm-up frames by at most
 * MAX_RSS_GROWTH_MIB (default 16 MiB); otherwise, or if libbridge's live handle count moves,
 * the program exits with status 3.
 *
 * Build: cc -std=c99 camera_loop.c $(pkg-config --cflags --libs bridge) -o camera_loop
 */
#define _POSIX_C_SOURCE 200809L
#include <bridge.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Resident set size in bytes (0 if /proc is unavailable). */
static size_t rss_bytes(void) {
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A moving test pattern with a little pseudo-random sensor noise, written in place (NV12). */
static void synth_frame(unsigned char *nv12, uint32_t w, uint32_t h, size_t stride, unsigned frame, uint32_t *rng) {
    uint32_t x, y;
    for (y = 0; y < h; y++) {
        for (x = 0; x < w; x++) {
            unsigned v = (x * 3 + y * 2 + frame * 5) & 255u;
            *rng = *rng * 1664525u + 1013904223u;
            v = v / 2 + 40 + ((*rng >> 24) & 15u);
            nv12[y * stride + x] = (unsigned char)v;
        }
    }
    for (y = 0; y < h / 2; y++) {
        for (x = 0; x < w / 2; x++) {
            unsigned char *uv = nv12 + (h + y) * stride + 2 * x;
            uv[0] = (unsigned char)(128 + ((x + frame) & 31u) - 16);
            uv[1] = (unsigned char)(128 + ((y + frame) & 31u) - 16);
        }
    }
}

static int fail(const char *what, bridge_status st) {
    fprintf(stderr, "camera_loop: %s: %s: %s\n", what, bridge_status_name((uint32_t)st), bridge_last_error());
    return 1;
}

int main(int argc, char **argv) {
    unsigned frames = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 60;
    uint32_t w = argc > 4 ? (uint32_t)strtoul(argv[3], NULL, 10) : 320;
    uint32_t h = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 240;
    double max_growth_mib = argc > 5 ? strtod(argv[5], NULL) : 16.0;
    unsigned warmup = frames >= 10 ? frames / 5 : 1;
    bridge_model *model = NULL;
    bridge_restorer *restorer = NULL;
    bridge_restorer_options opts;
    bridge_image in, out;
    unsigned char *inbuf = NULL, *outbuf = NULL;
    uint32_t ow, oh, rng = 12345;
    size_t rss_warm = 0, rss_end, handles_before = bridge_live_handle_count();
    double t0 = 0, elapsed, growth_mib;
    bridge_status st;
    unsigned i;
    int rc = 1;

    if (argc < 2 || frames < 2 || w == 0 || h == 0) {
        fprintf(stderr, "usage: %s MODEL.onnx [FRAMES>=2 [WIDTH HEIGHT [MAX_RSS_GROWTH_MIB]]]\n", argv[0]);
        return 2;
    }
    if ((st = bridge_model_load(argv[1], &model)) != BRIDGE_OK) return fail("loading the model", st);
    bridge_restorer_options_init(&opts);
    opts.seed = 7;
    if ((st = bridge_restorer_new(model, &opts, &restorer)) != BRIDGE_OK) {
        rc = fail("creating the restorer", st);
        goto done;
    }
    /* The restorer owns what it needs: the model can go now. */
    bridge_model_free(model);
    model = NULL;
    if ((st = bridge_restorer_output_size(restorer, w, h, &ow, &oh)) != BRIDGE_OK) {
        rc = fail("output size", st);
        goto done;
    }

    /* Frame pool: one input and one output buffer, reused for every frame. */
    memset(&in, 0, sizeof in);
    in.width = w;
    in.height = h;
    in.stride = (w + 63u) & ~(size_t)63u; /* ISP-style padded rows */
    in.format = BRIDGE_FORMAT_NV12;
    in.flags = 0; /* BT.601 video range */
    out = in;
    out.width = ow;
    out.height = oh;
    out.stride = (ow + 63u) & ~(size_t)63u;
    if ((st = bridge_image_required_size(&in, &in.size)) != BRIDGE_OK ||
        (st = bridge_image_required_size(&out, &out.size)) != BRIDGE_OK) {
        rc = fail("buffer sizes", st);
        goto done;
    }
    inbuf = malloc(in.size);
    outbuf = malloc(out.size);
    if (!inbuf || !outbuf) {
        fprintf(stderr, "camera_loop: out of memory\n");
        goto done;
    }
    in.data = inbuf;
    out.data = outbuf;

    for (i = 0; i < frames; i++) {
        if (i == warmup) {
            rss_warm = rss_bytes();
            t0 = now_s();
        }
        synth_frame(inbuf, w, h, in.stride, i, &rng);
        if ((st = bridge_restore(restorer, &in, &out, NULL, NULL)) != BRIDGE_OK) {
            rc = fail("restoring a frame", st);
            goto done;
        }
    }
    elapsed = now_s() - t0;
    rss_end = rss_bytes();
    growth_mib = ((double)rss_end - (double)rss_warm) / (1024.0 * 1024.0);
    printf("camera_loop: %u frames %ux%u NV12 -> %ux%u, %.2f frames/s (after %u warm-up frames)\n", frames, (unsigned)w,
           (unsigned)h, (unsigned)ow, (unsigned)oh, (double)(frames - warmup) / elapsed, warmup);
    printf("camera_loop: RSS after warm-up %.1f MiB, at the end %.1f MiB (growth %.2f MiB, bound %.1f MiB)\n",
           (double)rss_warm / 1048576.0, (double)rss_end / 1048576.0, growth_mib, max_growth_mib);
    if (rss_warm == 0) {
        fprintf(stderr, "camera_loop: /proc/self/statm unreadable; memory not checked\n");
        rc = 3;
    } else if (growth_mib > max_growth_mib) {
        fprintf(stderr, "camera_loop: memory grew by %.2f MiB over %u frames (bound %.1f MiB)\n", growth_mib,
                frames - warmup, max_growth_mib);
        rc = 3;
    } else {
        rc = 0;
    }

done:
    bridge_restorer_free(restorer);
    bridge_model_free(model);
    free(inbuf);
    free(outbuf);
    if (rc == 0 && bridge_live_handle_count() != handles_before) {
        fprintf(stderr, "camera_loop: %zu libbridge handles leaked\n", bridge_live_handle_count() - handles_before);
        rc = 3;
    }
    return rc;
}
