#!/usr/bin/env bash
# Fetch the photographs into .deps/data/{train,test,val,unseen}/ (idempotent; prints .deps/data).
#
# Two registry sources (see docs/data.md for each photo's author and licence):
# * Debian packages that ship photographs (desktop wallpapers, Palapeli's puzzles, Tux Paint's
#   templates, digiKam's about page): the .deb files are downloaded with `apt-get download` and
#   unpacked with `dpkg-deb -x` into .deps/debs/ — nothing is installed system-wide. Only photographs
#   are copied (the packages also hold drawn/abstract artwork, which is left out).
# * PyPI wheels that ship photos (scikit-image, scikit-learn, matplotlib; kept in .whl/, nothing is
#   installed): each file's SHA-256 is checked. scikit-image's chelsea.png is the source of the
#   repository's sample image docs/assets/chelsea-256.png.
# Files are named <package>__<file>. The split is by photo, so no photo has crops in two splits:
# train (training), test (the held-out numbers), val (choosing sampler/NFE defaults) and unseen
# (a second quality check; never used for training or for choosing anything).
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
palapeli-data|palapeli/collection/castle-maintenon.jpg|val
palapeli-data|palapeli/collection/cincinnati-bridge.jpg|unseen
palapeli-data|palapeli/collection/citrus-fruits.jpg|train
palapeli-data|palapeli/collection/european-honey-bee.jpg|unseen
palapeli-data|palapeli/collection/panther-chameleon-female.jpg|train
plasma-workspace-wallpapers|wallpapers/DarkestHour/contents/images/2560x1600.jpg|train
digikam-data|digikam/about/images/body-background.jpg|train
tuxpaint-data|tuxpaint/templates/burnt_bark.jpg|train
tuxpaint-data|tuxpaint/templates/cliff.jpg|val
tuxpaint-data|tuxpaint/templates/corn_maze.jpg|val
tuxpaint-data|tuxpaint/templates/jellyfish.jpg|train
tuxpaint-data|tuxpaint/templates/lighthouse.jpg|unseen
tuxpaint-data|tuxpaint/templates/mossy_log.jpg|train
tuxpaint-data|tuxpaint/templates/mudstone.jpg|train
tuxpaint-data|tuxpaint/templates/ocean_splash.jpg|train
tuxpaint-data|tuxpaint/templates/ocean_waves.jpg|unseen
tuxpaint-data|tuxpaint/templates/redwoods_above.jpg|train
tuxpaint-data|tuxpaint/templates/rocks.jpg|unseen
tuxpaint-data|tuxpaint/templates/sheep.jpg|unseen
tuxpaint-data|tuxpaint/templates/spiders_web.jpg|train
tuxpaint-data|tuxpaint/templates/sun_behind_clouds.jpg|train
tuxpaint-data|tuxpaint/templates/sun_behind_leaves.jpg|val
tuxpaint-data|tuxpaint/templates/trees_above.jpg|train
tuxpaint-data|tuxpaint/templates/trees_at_dusk.jpg|train
tuxpaint-data|tuxpaint/templates/wool_mill_machine.jpg|val
EOF
)

# PyPI wheels that ship photos: distribution|version|file inside the wheel|split|sha256 (checked after
# extraction). The destination is <distribution>__<file name>.
wheel_photos=$(cat <<'EOF'
scikit-image|0.26.0|skimage/data/astronaut.png|test|88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
scikit-image|0.26.0|skimage/data/chelsea.png|test|596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb
scikit-image|0.26.0|skimage/data/coffee.png|test|cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7
scikit-image|0.26.0|skimage/data/rocket.jpg|test|c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c
scikit-image|0.26.0|skimage/data/ihc.png|train|f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef
scikit-learn|1.9.1|sklearn/datasets/images/china.jpg|unseen|8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29
scikit-learn|1.9.1|sklearn/datasets/images/flower.jpg|val|a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638
matplotlib|3.11.2|matplotlib/mpl-data/sample_data/grace_hopper.jpg|unseen|a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130
EOF
)
# Files kept next to the data because they state the photos' licences: distribution|file in the wheel|name
# in .deps/data/licenses/ (a `*` stands for the wheel's version).
wheel_licences=$(cat <<'EOF'
scikit-image|skimage/data/_fetchers.py|scikit-image._fetchers.py
scikit-image|scikit_image-*.dist-info/LICENSE.txt|scikit-image.LICENSE.txt
scikit-learn|sklearn/datasets/images/README.txt|scikit-learn.images-README.txt
scikit-learn|scikit_learn-*.dist-info/licenses/COPYING|scikit-learn.COPYING
matplotlib|matplotlib-*.dist-info/LICENSE|matplotlib.LICENSE
EOF
)
splits="train test val unseen"

# Destination name: package + the most telling path part (plasma keeps the photo in <Name>/contents/).
dest_name() {
  local pkg=$1 rel=$2 base
  case "$rel" in
    wallpapers/*) base=$(echo "$rel" | cut -d/ -f2).jpg ;;
    *) base=$(basename "$rel") ;;
  esac
  echo "${pkg}__${base}"
}

# Only what is missing is fetched, so a complete .deps/data needs no network at all.
missing_debs="" missing_wheels=""
while IFS='|' read -r pkg rel split; do
  [ -f "$data/$split/$(dest_name "$pkg" "$rel")" ] || missing_debs="$missing_debs $pkg"
done <<< "$photos"
while IFS='|' read -r dist ver file split _; do
  [ -f "$data/$split/${dist}__$(basename "$file")" ] || missing_wheels="$missing_wheels $dist|$ver"
done <<< "$wheel_photos"
missing_debs=$(echo $missing_debs | tr ' ' '\n' | sort -u)
missing_wheels=$(echo $missing_wheels | tr ' ' '\n' | sort -u)
if [ -z "$missing_debs$missing_wheels" ]; then echo "$data"; exit 0; fi

for split in $splits; do mkdir -p "$data/$split"; done
mkdir -p "$root/.whl" "$data/licenses"

# PyPI: the data files are the same in every wheel of a version, so ask for one fixed wheel (CPython
# 3.11, manylinux x86_64) whatever this machine's Python is; only the zip is read, nothing is installed.
for dv in $missing_wheels; do
  dist=${dv%|*} ver=${dv#*|} stem=$(echo "${dv%|*}" | tr - _)
  whl=$(ls "$root"/.whl/"$stem-$ver"-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$whl" ]; then
    echo "fetch-data: downloading $dist==$ver into .whl/" >&2
    python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      --python-version 3.11 --implementation cp --abi cp311 -d "$root/.whl" "$dist==$ver" >&2
    whl=$(ls "$root"/.whl/"$stem-$ver"-*.whl | head -n1)
  fi
  WHEEL_PHOTOS="$wheel_photos" WHEEL_LICENCES="$wheel_licences" python3 - "$whl" "$data" "$dist" <<'PY'
import fnmatch, hashlib, os, sys, zipfile
whl, data, dist = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    for line in os.environ["WHEEL_PHOTOS"].split():
        d, _, name, split, sha = line.split("|")
        if d != dist:
            continue
        dst = os.path.join(data, split, dist + "__" + os.path.basename(name))
        if os.path.exists(dst):
            continue
        blob = z.read(name)
        if hashlib.sha256(blob).hexdigest() != sha:
            sys.exit(f"fetch-data: {name} in {os.path.basename(whl)} does not have the expected sha256")
        with open(dst + ".part", "wb") as f:
            f.write(blob)
        os.replace(dst + ".part", dst)
    for line in os.environ["WHEEL_LICENCES"].split():
        d, pattern, dst = line.split("|")
        if d != dist:
            continue
        src = next(n for n in z.namelist() if fnmatch.fnmatch(n, pattern))
        with open(os.path.join(data, "licenses", dst), "wb") as f:
            f.write(z.read(src))
PY
done
[ -z "$missing_debs" ] && { echo "$data"; exit 0; }

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null \
  || { echo "fetch-data: needs apt-get and dpkg-deb (a Debian-based system)" >&2; exit 1; }
mkdir -p "$debs"
for pkg in $missing_debs; do
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
  cp "$debs/x/$pkg/usr/share/doc/$pkg/copyright" "$data/licenses/$pkg.copyright"
  # Palapeli states each photo's author and licence in the puzzle's .desktop file, not in copyright.
  if [ "$pkg" = palapeli-data ]; then
    for f in "$debs/x/$pkg"/usr/share/palapeli/collection/*.desktop; do
      cp "$f" "$data/licenses/$pkg.$(basename "$f")"
    done
  fi
done

while IFS='|' read -r pkg rel split; do
  dst="$data/$split/$(dest_name "$pkg" "$rel")"
  [ -f "$dst" ] && continue
  src="$debs/x/$pkg/usr/share/$rel"
  [ -f "$src" ] || { echo "fetch-data: $pkg no longer ships $rel" >&2; exit 1; }
  cp "$src" "$dst.part" && mv "$dst.part" "$dst"
done <<< "$photos"
rm -rf "$debs/x"   # the unpacked trees are not needed once the photos are copied
echo "$data"
