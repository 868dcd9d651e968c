#!/usr/bin/env python3
"""Compare two PNG images sample by sample (standard library only: CI machines have no PIL).

    scripts/pngdiff.py A.png B.png [--max-diff N]

Prints one JSON line: width, height, channels, bit depth, the largest absolute difference in
levels of the file's bit depth, and how many samples differ (by any amount, and by more than 1).
Exits 1 when the sizes differ or the largest difference exceeds --max-diff (default: no limit).
Handles what the `bridge` CLI writes: non-interlaced 8/16-bit gray/RGB/RGBA.
"""
import json
import struct
import sys
import zlib


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = hdr
    chans = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if chans is None or depth not in (8, 16) or interlace:
        raise ValueError(f"{path}: unsupported PNG (color type {ctype}, depth {depth}, interlace {interlace})")
    bpp = chans * depth // 8
    stride = w * bpp
    raw = zlib.decompress(b"".join(idat))
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    samples = list(out) if depth == 8 else [v for (v,) in struct.iter_unpack(">H", out)]
    return w, h, chans, depth, samples


def main():
    args = sys.argv[1:]
    limit = None
    if "--max-diff" in args:
        i = args.index("--max-diff")
        limit = int(args[i + 1])
        del args[i:i + 2]
    a, b = read_png(args[0]), read_png(args[1])
    if a[:4] != b[:4]:
        print(json.dumps({"error": f"shape/depth differ: {a[:4]} vs {b[:4]}"}))
        return 1
    diffs = [abs(x - y) for x, y in zip(a[4], b[4])]
    worst = max(diffs) if diffs else 0
    res = {"width": a[0], "height": a[1], "channels": a[2], "bit_depth": a[3], "samples": len(diffs),
           "max_diff": worst, "differing": sum(d > 0 for d in diffs), "differing_gt1": sum(d > 1 for d in diffs)}
    print(json.dumps(res))
    return 1 if limit is not None and worst > limit else 0


if __name__ == "__main__":
    sys.exit(main())
