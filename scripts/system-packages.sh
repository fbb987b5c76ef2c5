#!/usr/bin/env bash
# The system tools MSQ calls, installed from the distribution (apt) only when missing, with sudo
# only when not root. Needed: g++ and make (C simulation, Verilator's C++ builds), chromium (the
# report's test in a real browser), tclsh (the tests run the Tcl of `msq deploy` with Vivado
# stubs) and ccache (the tests' Verilator builds share the compiled Verilator runtime). Optional: Icarus Verilog (`msq sim --simulator icarus`) and the LZ4 header Verilator's
# FST waveform writer compiles against (`msq sim --waves`). Where apt cannot run, it names the
# packages to install; it exits non-zero only when a needed one is still missing.
# Called by scripts/setup.sh.
set -uo pipefail

purpose() {
  case "$1" in
    g++) echo "C simulation (msq csim) and Verilator builds (msq sim)" ;;
    make) echo "Verilator builds (msq sim)" ;;
    chromium) echo "the HTML report's test in a headless browser (tests/test_report_browser.py)" ;;
    iverilog) echo "the second RTL simulator (msq sim --simulator icarus)" ;;
    liblz4-dev) echo "waveforms from Verilator (msq sim --waves)" ;;
    tcl) echo "checking the Vivado Tcl of msq deploy under tclsh (tests/test_deploy.py)" ;;
    ccache) echo "the tests' Verilator builds, which share the compiled Verilator runtime (CCACHE_DIR)" ;;
  esac
}

check() {
  REQUIRED=()
  OPTIONAL=()
  command -v g++ >/dev/null 2>&1 || REQUIRED+=(g++)
  command -v make >/dev/null 2>&1 || REQUIRED+=(make)
  command -v chromium >/dev/null 2>&1 || REQUIRED+=(chromium)
  command -v tclsh >/dev/null 2>&1 || REQUIRED+=(tcl)
  command -v ccache >/dev/null 2>&1 || REQUIRED+=(ccache)
  command -v iverilog >/dev/null 2>&1 || OPTIONAL+=(iverilog)
  [ -f /usr/include/lz4.h ] || OPTIONAL+=(liblz4-dev)
}

check
MISSING=("${REQUIRED[@]}" "${OPTIONAL[@]}")
if [ ${#MISSING[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get is not available here: install ${MISSING[*]} with your system's package manager" >&2
  else
    if [ "$(id -u)" -eq 0 ]; then
      SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
      SUDO=(sudo)
    else
      SUDO=()
      echo "setup: not root and no sudo: apt-get may fail; an administrator can run: apt-get install ${MISSING[*]}" >&2
    fi
    "${SUDO[@]}" apt-get update -qq && "${SUDO[@]}" apt-get install -y -qq "${MISSING[@]}" \
      || echo "setup: apt-get could not install ${MISSING[*]}" >&2
  fi
  check
fi
for pkg in "${OPTIONAL[@]}"; do
  echo "setup: warning: package $pkg is missing (optional: $(purpose "$pkg"))" >&2
done
if [ ${#REQUIRED[@]} -gt 0 ]; then
  for pkg in "${REQUIRED[@]}"; do
    echo "setup: error: package $pkg is missing; it is needed for $(purpose "$pkg")" >&2
  done
  exit 1
fi
