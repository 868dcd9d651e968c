#!/usr/bin/env bash
# Fetch the training/test photographs into .deps/data/{train,test}/ (idempotent; prints .deps/data).
#
# Two registry sources (see docs/data.md for each photo's author and licence):
# * Debian's desktop-wallpaper packages: the .deb files are downloaded with `apt-get download` and
#   unpacked with `dpkg-deb -x` into .deps/debs/ — nothing is installed system-wide. Only photographs
#   are copied (the packages also hold drawn/abstract artwork, which is left out).
# * PyPI's scikit-image 0.26.0 wheel (kept in .whl/; nothing is installed): four public-domain/CC0
#   photos from skimage/data/, test split only. One of them, chelsea.png, is the source of the
#   repository's sample image docs/assets/chelsea-256.png.
# Files are named <package>__<file>. The split is by photo, so no test photo has a crop in training.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data="$root/.deps/data"
debs="$root/.deps/debs"

# package|path inside the package (relative to usr/share/)|split
photos=$(cat <<'EOF'
lomiri-wallpapers-16.04|backgrounds/Bridge_by_Sander_Klootwijk.jpg|train
lomiri-wallpapers-16.04|backgrounds/Dragonfly_by_Bolly.jpg|train
lomiri-wallpapers-16.04|backgrounds/Picture_0B_by_freespace.jpg|train
lomiri-wallpapers-16.04|backgrounds/Picture_1A_by_freespace.jpg|train
lomiri-wallpapers-16.04|backgrounds/Wine_by_Jakkub_Mede.jpg|train
lomiri-wallpapers-16.04|backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg|train
lomiri-wallpapers-16.04|backgrounds/free_by_Peter_Nerlich.jpg|train
lomiri-wallpapers-16.04|backgrounds/friends_by_Aitzol_Berasategi.jpg|test
lomiri-wallpapers-16.04|backgrounds/greentock_by_Peter_Nerlich.jpg|train
lomiri-wallpapers-16.04|backgrounds/life_by_Aitzol_Berasategi.jpg|train
lomiri-wallpapers-16.04|backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg|test
lomiri-wallpapers-16.04|backgrounds/seeding_by_Clements_Engelhardt.jpg|train
lomiri-wallpapers-16.04|backgrounds/sunset_by_Aitzol_Berasategi.jpg|train
lomiri-wallpapers-20.04|backgrounds/Infinite-Sea_by_Aury88.jpg|train
lomiri-wallpapers-20.04|backgrounds/Kleiber_by_Lukas_Baubkus.jpg|test
mate-backgrounds|backgrounds/mate/nature/Aqua.jpg|train
mate-backgrounds|backgrounds/mate/nature/Blinds.jpg|train
mate-backgrounds|backgrounds/mate/nature/Dune.jpg|test
mate-backgrounds|backgrounds/mate/nature/FreshFlower.jpg|train
mate-backgrounds|backgrounds/mate/nature/Garden.jpg|train
mate-backgrounds|backgrounds/mate/nature/GreenMeadow.jpg|train
mate-backgrounds|backgrounds/mate/nature/LadyBird.jpg|test
mate-backgrounds|backgrounds/mate/nature/RainDrops.jpg|train
mate-backgrounds|backgrounds/mate/nature/Storm.jpg|train
mate-backgrounds|backgrounds/mate/nature/TwoWings.jpg|train
mate-backgrounds|backgrounds/mate/nature/Wood.jpg|train
mate-backgrounds|backgrounds/mate/nature/YellowFlower.jpg|train
plasma-workspace-wallpapers|wallpapers/BytheWater/contents/images/2560x1600.jpg|train
plasma-workspace-wallpapers|wallpapers/ColdRipple/contents/images/2560x1600.jpg|train
plasma-workspace-wallpapers|wallpapers/ColorfulCups/contents/images/2560x1600.jpg|test
plasma-workspace-wallpapers|wallpapers/EveningGlow/contents/images/2560x1600.jpg|test
plasma-workspace-wallpapers|wallpapers/FallenLeaf/contents/images/2560x1600.jpg|train
plasma-workspace-wallpapers|wallpapers/Grey/contents/images/2560x1600.jpg|train
plasma-workspace-wallpapers|wallpapers/Kite/contents/images/2560x1600.jpg|train
plasma-workspace-wallpapers|wallpapers/OneStandsOut/contents/images/2560x1600.jpg|train
plasma-workspace-wallpapers|wallpapers/Path/contents/images/2560x1600.jpg|test
plasma-workspace-wallpapers|wallpapers/summer_1am/contents/images/2560x1600.jpg|train
EOF
)

# file inside the scikit-image wheel's skimage/data/|split|sha256 (checked after extraction)
skimage_photos=$(cat <<'EOF'
astronaut.png|test|88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
chelsea.png|test|596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb
coffee.png|test|cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7
rocket.jpg|test|c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c
EOF
)
skimage_ver=0.26.0

# Destination name: package + the most telling path part (plasma keeps the photo in <Name>/contents/).
dest_name() {
  local pkg=$1 rel=$2 base
  case "$rel" in
    wallpapers/*) base=$(echo "$rel" | cut -d/ -f2).jpg ;;
    *) base=$(basename "$rel") ;;
  esac
  echo "${pkg}__${base}"
}

have_debian=1 have_skimage=1
while IFS='|' read -r pkg rel split; do
  [ -f "$data/$split/$(dest_name "$pkg" "$rel")" ] || { have_debian=0; break; }
done <<< "$photos"
while IFS='|' read -r file split _; do
  [ -f "$data/$split/scikit-image__$file" ] || { have_skimage=0; break; }
done <<< "$skimage_photos"
if [ "$have_debian$have_skimage" = 11 ]; then echo "$data"; exit 0; fi

# scikit-image: the data files are the same in every wheel of a version, so ask for one fixed wheel
# (CPython 3.11, manylinux x86_64) whatever this machine's Python is; only the zip is read.
mkdir -p "$root/.whl" "$data/train" "$data/test" "$data/licenses"
if [ "$have_skimage" = 0 ]; then
skwhl=$(ls "$root"/.whl/scikit_image-$skimage_ver-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$skwhl" ]; then
  echo "fetch-data: downloading scikit-image==$skimage_ver into .whl/" >&2
  python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 -d "$root/.whl" "scikit-image==$skimage_ver" >&2
  skwhl=$(ls "$root"/.whl/scikit_image-$skimage_ver-*.whl | head -n1)
fi
SKIMAGE_PHOTOS="$skimage_photos" python3 - "$skwhl" "$data" "$skimage_ver" <<'PY'
import hashlib, os, sys, zipfile
whl, data, ver = sys.argv[1:4]
wanted = os.environ["SKIMAGE_PHOTOS"].split()
with zipfile.ZipFile(whl) as z:
    for line in wanted:
        name, split, sha = line.split("|")
        blob = z.read("skimage/data/" + name)
        if hashlib.sha256(blob).hexdigest() != sha:
            sys.exit(f"fetch-data: {name} in {os.path.basename(whl)} does not have the expected sha256")
        dst = os.path.join(data, split, "scikit-image__" + name)
        with open(dst + ".part", "wb") as f:
            f.write(blob)
        os.replace(dst + ".part", dst)
    # The per-image licences are stated in the docstrings of skimage/data/_fetchers.py (quoted in
    # docs/data.md); keep that file and the package licence next to the data.
    for src, dst in (("skimage/data/_fetchers.py", "scikit-image._fetchers.py"),
                     (f"scikit_image-{ver}.dist-info/LICENSE.txt", "scikit-image.LICENSE.txt")):
        with open(os.path.join(data, "licenses", dst), "wb") as f:
            f.write(z.read(src))
PY
fi
if [ "$have_debian" = 1 ]; then echo "$data"; exit 0; fi

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
  || { echo "fetch-data: needs apt-get and dpkg-deb (a Debian-based system)" >&2; exit 1; }
mkdir -p "$debs"
for pkg in $(echo "$photos" | cut -d'|' -f1 | sort -u); do
  if ! ls "$debs/${pkg}"_*.deb >/dev/null 2>&1; then
    # apt-get download needs the package lists; refresh them once if the first try fails.
    (cd "$debs" && apt-get download -q "$pkg" >&2) \
      || { apt-get update -qq >&2 && (cd "$debs" && apt-get download -q "$pkg" >&2); }
  fi
  deb=$(ls "$debs/${pkg}"_*.deb | head -n1)
  if [ ! -d "$debs/x/$pkg" ]; then
    rm -rf "$debs/x/$pkg.part"; mkdir -p "$debs/x/$pkg.part"
    dpkg-deb -x "$deb" "$debs/x/$pkg.part"
    mv "$debs/x/$pkg.part" "$debs/x/$pkg"
  fi
  # Keep each package's copyright file next to the data (the licences in docs/data.md come from it).
  mkdir -p "$data/licenses"
  cp "$debs/x/$pkg/usr/share/doc/$pkg/copyright" "$data/licenses/$pkg.copyright"
done

mkdir -p "$data/train" "$data/test"
while IFS='|' read -r pkg rel split; do
  src="$debs/x/$pkg/usr/share/$rel"
  [ -f "$src" ] || { echo "fetch-data: $pkg no longer ships $rel" >&2; exit 1; }
  cp "$src" "$data/$split/$(dest_name "$pkg" "$rel")"
done <<< "$photos"
rm -rf "$debs/x"   # the unpacked trees (~190 MB) are not needed once the photos are copied
echo "$data"
