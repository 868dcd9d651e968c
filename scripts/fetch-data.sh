#!/usr/bin/env bash
# Fetch the training/test photographs into .deps/data/{train,test}/ (idempotent; prints .deps/data).
#
# The photos come from Debian's desktop-wallpaper packages (see docs/data.md for each photo's author
# and licence). The .deb files are downloaded with `apt-get download` and unpacked with `dpkg-deb -x`
# into .deps/debs/ — nothing is installed system-wide. Only photographs are copied (the packages
# also hold drawn/abstract artwork, which is left out), under the name <package>__<file>.
# The split is by photo, so no test photo has a crop in the training set.
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

# Destination name: package + the most telling path part (plasma keeps the photo in <Name>/contents/).
dest_name() {
  local pkg=$1 rel=$2 base
  case "$rel" in
    wallpapers/*) base=$(echo "$rel" | cut -d/ -f2).jpg ;;
    *) base=$(basename "$rel") ;;
  esac
  echo "${pkg}__${base}"
}

complete=1
while IFS='|' read -r pkg rel split; do
  [ -f "$data/$split/$(dest_name "$pkg" "$rel")" ] || { complete=0; break; }
done <<< "$photos"
if [ "$complete" = 1 ]; then echo "$data"; exit 0; fi

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
