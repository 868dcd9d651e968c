# libbridge for C and C++ users: builds the C ABI (ffi/) with cargo and installs it.
#
#   make                               # cargo build --release -p bridge-ffi
#   make install PREFIX=/opt/libbridge # (DESTDIR=... for staged installs)
#   make uninstall PREFIX=/opt/libbridge
#   make TARGET=aarch64-unknown-linux-gnu              # cross build (Jetson; docs/jetson.md)
#   make TARGET=aarch64-unknown-linux-gnu install DESTDIR=/tmp/stage PREFIX=/usr
#   make TARGET=aarch64-unknown-linux-gnu GLIBC=2.31   # needs only glibc 2.31 (JetPack 5; cargo-zigbuild)
#
# Installs into $(LIBDIR): libbridge.so.$(VERSION) with the links libbridge.so.$(MAJOR) (the
# SONAME) and libbridge.so, libbridge.a, ONNX Runtime (libbridge loads it at run time from its own
# folder), pkgconfig/bridge.pc + bridge-static.pc and cmake/bridge/bridgeConfig.cmake +
# bridgeConfigVersion.cmake; into $(INCLUDEDIR): bridge.h.
#
# Variables: TARGET (a Rust target triple for a cross build; its C cross compiler
# <arch>-linux-gnu-gcc links, set through cargo's per-target environment variables, e.g.
# CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER; `rustup target add` runs when rustup is there),
# PREFIX (/usr/local), LIBDIR, INCLUDEDIR, DESTDIR, CARGO (cargo), PROFILE (release;
# `test` reuses what `cargo test` built), FEATURES (e.g. cuda,tensorrt), CARGO_TARGET_DIR,
# WITH_ORT (1: install ONNX Runtime next to libbridge, with its CUDA/TensorRT provider libraries
# when they are next to it; only a library built for the target's architecture is copied),
# ORT_LIB (the libonnxruntime file to install; default: the one scripts/install-ort.sh installs
# into .deps/onnxruntime, for a cross TARGET the one `scripts/install-ort.sh TARGET` staged in
# .deps/onnxruntime-<arch>, if any; see scripts/install-ort-lib.sh), NO_BUILD=1
# (install what is already built, e.g. `make && sudo make install NO_BUILD=1`), GLIBC (e.g. 2.31:
# link against that glibc version with cargo-zigbuild and zig as the linker instead of the GNU
# toolchain, so the library runs on systems with that glibc or newer; both tools are installed
# into .deps/ by scripts/install-zig.sh; without TARGET it builds for this machine's triple).

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DESTDIR ?=
CARGO ?= cargo
PROFILE ?= release
FEATURES ?=
WITH_ORT ?= 1
ORT_LIB ?=
CARGO_TARGET_DIR ?= $(CURDIR)/target
TARGET ?=
GLIBC ?=
ifneq ($(GLIBC),)
# A glibc floor needs an explicit target (cargo-zigbuild's `<triple>.<glibc>`); cargo then puts
# the output under target/<triple>/ like any cross build.
TARGET := $(if $(TARGET),$(TARGET),$(shell rustc -vV | sed -n 's/^host: //p'))
endif

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR := $(word 1,$(subst ., ,$(VERSION)))
MINOR := $(word 2,$(subst ., ,$(VERSION)))
# Cargo's output folder for the profile (dev and test share `debug`).
PROFILE_DIR := $(if $(filter dev test,$(PROFILE)),debug,$(if $(filter bench,$(PROFILE)),release,$(PROFILE)))
BUILT := $(CARGO_TARGET_DIR)/$(if $(TARGET),$(TARGET)/)$(PROFILE_DIR)
# The machine the library is for: the triple's first field, else this machine.
ARCH := $(if $(TARGET),$(firstword $(subst -, ,$(TARGET))),$(shell uname -m))
# Cross builds link with the GNU cross toolchain of that architecture (Debian:
# gcc-aarch64-linux-gnu libc6-dev-arm64-cross); the variables only affect cargo's TARGET builds.
TARGET_ENV := $(shell echo '$(TARGET)' | tr 'a-z-' 'A-Z_')
CROSS_CC ?= $(ARCH)-linux-gnu-gcc
CROSS_ENV := $(if $(GLIBC),,$(if $(TARGET),CARGO_TARGET_$(TARGET_ENV)_LINKER='$(CROSS_CC)' CC_$(subst -,_,$(TARGET))='$(CROSS_CC)' AR_$(subst -,_,$(TARGET))='$(ARCH)-linux-gnu-ar'))
# System libraries a static libbridge needs (rustc --print native-static-libs on Linux).
STATIC_LIBS := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
SIZEOF_VOID_P := $(if $(TARGET),$(if $(findstring 64,$(ARCH)),8,4),$(shell echo $$(( $$(getconf LONG_BIT) / 8 ))))
CMAKEDIR := $(LIBDIR)/cmake/bridge

SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	-e 's|@VERSION@|$(VERSION)|g' -e 's|@MAJOR@|$(MAJOR)|g' -e 's|@MINOR@|$(MINOR)|g' \
	-e 's|@STATIC_LIBS@|$(STATIC_LIBS)|g' -e 's|@STATIC_LIBS_CMAKE@|$(subst $() ,;,$(patsubst -l%,%,$(STATIC_LIBS)))|g' \
	-e 's|@SIZEOF_VOID_P@|$(SIZEOF_VOID_P)|g' \
	-e "s|@INCLUDEDIR_FROM_CMAKEDIR@|$$(realpath -m --relative-to='$(CMAKEDIR)' '$(INCLUDEDIR)')|g"

.PHONY: all build install uninstall header

all: build

build:
ifneq ($(TARGET),)
	@if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx '$(TARGET)'; then rustup target add '$(TARGET)'; fi
endif
ifneq ($(GLIBC),)
	zig_bin=$$('$(CURDIR)/scripts/install-zig.sh') && PATH="$$zig_bin:$$PATH" CARGO_TARGET_DIR='$(CARGO_TARGET_DIR)' \
	  $(CARGO) zigbuild --locked -p bridge-ffi --lib --profile $(PROFILE) $(if $(FEATURES),--features $(FEATURES)) --target $(TARGET).$(GLIBC)
else
	CARGO_TARGET_DIR='$(CARGO_TARGET_DIR)' $(CROSS_ENV) $(CARGO) build --locked -p bridge-ffi --lib --profile $(PROFILE) $(if $(FEATURES),--features $(FEATURES)) $(if $(TARGET),--target $(TARGET))
endif

# Regenerate include/bridge.h (cbindgen).
header:
	CARGO_TARGET_DIR='$(CARGO_TARGET_DIR)' scripts/gen-header.sh

install: $(if $(filter 1,$(NO_BUILD)),,build)
	install -d '$(DESTDIR)$(LIBDIR)/pkgconfig' '$(DESTDIR)$(CMAKEDIR)' '$(DESTDIR)$(INCLUDEDIR)'
	install -m 755 '$(BUILT)/libbridge.so' '$(DESTDIR)$(LIBDIR)/libbridge.so.$(VERSION)'
	ln -sfn 'libbridge.so.$(VERSION)' '$(DESTDIR)$(LIBDIR)/libbridge.so.$(MAJOR)'
	ln -sfn 'libbridge.so.$(MAJOR)' '$(DESTDIR)$(LIBDIR)/libbridge.so'
	install -m 644 '$(BUILT)/libbridge.a' '$(DESTDIR)$(LIBDIR)/libbridge.a'
	install -m 644 include/bridge.h '$(DESTDIR)$(INCLUDEDIR)/bridge.h'
	$(SUBST) ffi/pkg/bridge.pc.in > '$(DESTDIR)$(LIBDIR)/pkgconfig/bridge.pc'
	$(SUBST) ffi/pkg/bridge-static.pc.in > '$(DESTDIR)$(LIBDIR)/pkgconfig/bridge-static.pc'
	$(SUBST) ffi/pkg/bridgeConfig.cmake.in > '$(DESTDIR)$(CMAKEDIR)/bridgeConfig.cmake'
	$(SUBST) ffi/pkg/bridgeConfigVersion.cmake.in > '$(DESTDIR)$(CMAKEDIR)/bridgeConfigVersion.cmake'
ifeq ($(WITH_ORT),1)
	scripts/install-ort-lib.sh '$(ARCH)' '$(DESTDIR)$(LIBDIR)' '$(ORT_LIB)'
endif
	@echo "installed libbridge $(VERSION) into $(DESTDIR)$(PREFIX)"

uninstall:
	rm -f '$(DESTDIR)$(LIBDIR)/libbridge.so.$(VERSION)' '$(DESTDIR)$(LIBDIR)/libbridge.so.$(MAJOR)' \
	  '$(DESTDIR)$(LIBDIR)/libbridge.so' '$(DESTDIR)$(LIBDIR)/libbridge.a' '$(DESTDIR)$(INCLUDEDIR)/bridge.h' \
	  '$(DESTDIR)$(LIBDIR)/pkgconfig/bridge.pc' '$(DESTDIR)$(LIBDIR)/pkgconfig/bridge-static.pc' \
	  '$(DESTDIR)$(CMAKEDIR)/bridgeConfig.cmake' '$(DESTDIR)$(CMAKEDIR)/bridgeConfigVersion.cmake'
	-rmdir '$(DESTDIR)$(CMAKEDIR)' 2>/dev/null
	@echo "ONNX Runtime (libonnxruntime*) in $(DESTDIR)$(LIBDIR) is left in place: other software may use it"
