/*
 * restore.c — restore an image file with libbridge (file in, file out).
 *
 *   restore MODEL.onnx IN.ppm OUT.ppm [NFE [SEED]]
 *
 * Images are binary PPM (P6, RGB) or PGM (P5, gray), 8-bit or 16-bit (maxval 65535), so this
 * example needs no image library. Convert other formats with e.g. `convert in.png out.ppm`.
 * Build: cc -std=c99 restore.c $(pkg-config --cflags --libs bridge) -o restore
 */
#include <bridge.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t width, height;
    int gray;            /* P5 */
    int sixteen;         /* maxval 65535 */
    unsigned char *px;   /* samples in file order (big-endian for 16-bit) */
    size_t size;
} pnm_image;

static int read_number(FILE *f, unsigned long *v) {
    int c = fgetc(f);
    while (c == '#' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        if (c == '#') {
            while (c != '\n' && c != EOF) c = fgetc(f);
        }
        c = fgetc(f);
    }
    if (c < '0' || c > '9') return -1;
    *v = 0;
    while (c >= '0' && c <= '9') {
        *v = *v * 10 + (unsigned long)(c - '0');
        if (*v > 1000000UL) return -1;
        c = fgetc(f);
    }
    return 0; /* the single whitespace after the number is consumed */
}

static int read_pnm(const char *path, pnm_image *img) {
    unsigned long w, h, maxval;
    char magic[2];
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    memset(img, 0, sizeof *img);
    if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || (magic[1] != '5' && magic[1] != '6') ||
        read_number(f, &w) || read_number(f, &h) || read_number(f, &maxval) || w == 0 || h == 0 ||
        (maxval != 255 && maxval != 65535)) {
        fclose(f);
        return -1;
    }
    img->width = (uint32_t)w;
    img->height = (uint32_t)h;
    img->gray = magic[1] == '5';
    img->sixteen = maxval == 65535;
    img->size = (size_t)w * h * (img->gray ? 1 : 3) * (img->sixteen ? 2 : 1);
    img->px = malloc(img->size);
    if (!img->px || fread(img->px, 1, img->size, f) != img->size) {
        free(img->px);
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

static int write_pnm(const char *path, const pnm_image *img) {
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return -1;
    fprintf(f, "P%c\n%u %u\n%u\n", img->gray ? '5' : '6', (unsigned)img->width, (unsigned)img->height,
            img->sixteen ? 65535u : 255u);
    ok = fwrite(img->px, 1, img->size, f) == img->size;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* PPM stores 16-bit samples big-endian; libbridge's RGB16 is native-endian. */
static void swap16_if_little(unsigned char *p, size_t n) {
    const uint16_t one = 1;
    size_t i;
    if (*(const unsigned char *)&one == 0) return;
    for (i = 0; i + 1 < n; i += 2) {
        unsigned char t = p[i];
        p[i] = p[i + 1];
        p[i + 1] = t;
    }
}

static int32_t on_progress(void *user_data, uint64_t done, uint64_t total, double fraction) {
    (void)user_data;
    fprintf(stderr, "\r  %3.0f%% (%llu/%llu)", 100.0 * fraction, (unsigned long long)done, (unsigned long long)total);
    return 0; /* nonzero would cancel */
}

static int fail(const char *what, bridge_status st) {
    fprintf(stderr, "restore: %s: %s: %s\n", what, bridge_status_name((uint32_t)st), bridge_last_error());
    return 1;
}

int main(int argc, char **argv) {
    bridge_model *model = NULL;
    bridge_restorer *restorer = NULL;
    bridge_restorer_options opts;
    bridge_image in, out;
    pnm_image src, dst;
    uint32_t ow, oh, format;
    bridge_status st;
    int rc = 1;

    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.onnx IN.ppm OUT.ppm [NFE [SEED]]\n", argv[0]);
        return 2;
    }
    if (bridge_abi_version() != BRIDGE_ABI_VERSION) {
        fprintf(stderr, "restore: libbridge ABI %u, header %u\n", (unsigned)bridge_abi_version(), (unsigned)BRIDGE_ABI_VERSION);
        return 1;
    }
    if (read_pnm(argv[2], &src) != 0) {
        fprintf(stderr, "restore: %s: not a binary PPM/PGM with maxval 255 or 65535\n", argv[2]);
        return 1;
    }
    if (src.gray && src.sixteen) {
        fprintf(stderr, "restore: 16-bit PGM is not supported by this example\n");
        free(src.px);
        return 1;
    }
    dst = src;
    dst.px = NULL;

    if ((st = bridge_model_load(argv[1], &model)) != BRIDGE_OK) {
        rc = fail("loading the model", st);
        goto done;
    }
    bridge_restorer_options_init(&opts);
    if (argc > 4) opts.nfe = (uint32_t)strtoul(argv[4], NULL, 10);
    if (argc > 5) opts.seed = (uint64_t)strtoull(argv[5], NULL, 10);
    if ((st = bridge_restorer_new(model, &opts, &restorer)) != BRIDGE_OK) {
        rc = fail("creating the restorer", st);
        goto done;
    }
    if ((st = bridge_restorer_output_size(restorer, src.width, src.height, &ow, &oh)) != BRIDGE_OK) {
        rc = fail("output size", st);
        goto done;
    }

    format = src.gray ? BRIDGE_FORMAT_GRAY8 : (src.sixteen ? BRIDGE_FORMAT_RGB16 : BRIDGE_FORMAT_RGB8);
    if (src.sixteen) swap16_if_little(src.px, src.size);
    memset(&in, 0, sizeof in);
    in.width = src.width;
    in.height = src.height;
    in.format = format;
    in.stride = (size_t)src.width * (src.gray ? 1 : 3) * (src.sixteen ? 2 : 1);
    in.data = src.px;
    in.size = src.size;

    dst.width = ow;
    dst.height = oh;
    out = in;
    out.width = ow;
    out.height = oh;
    out.stride = (size_t)ow * (src.gray ? 1 : 3) * (src.sixteen ? 2 : 1);
    if ((st = bridge_image_required_size(&out, &dst.size)) != BRIDGE_OK) {
        rc = fail("output buffer size", st);
        goto done;
    }
    dst.px = malloc(dst.size);
    if (!dst.px) {
        fprintf(stderr, "restore: out of memory\n");
        goto done;
    }
    out.data = dst.px;
    out.size = dst.size;

    st = bridge_restore(restorer, &in, &out, on_progress, NULL);
    fprintf(stderr, "\n");
    if (st != BRIDGE_OK) {
        rc = fail("restoring", st);
        goto done;
    }
    if (src.sixteen) swap16_if_little(dst.px, dst.size);
    if (write_pnm(argv[3], &dst) != 0) {
        fprintf(stderr, "restore: cannot write %s\n", argv[3]);
        goto done;
    }
    printf("restored %s (%ux%u) -> %s (%ux%u) with libbridge %s, ONNX Runtime %s\n", argv[2], (unsigned)src.width,
           (unsigned)src.height, argv[3], (unsigned)ow, (unsigned)oh, bridge_version_string(), bridge_onnxruntime_library());
    rc = 0;

done:
    bridge_restorer_free(restorer); /* NULL-safe */
    bridge_model_free(model);
    free(src.px);
    free(dst.px);
    return rc;
}
