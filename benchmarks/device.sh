#!/usr/bin/env bash
# The accelerator check of issue #18 (under 8 minutes on one GPU): gridnet's 32^3 seed preset
# (forward+backward, one outer step, a short training run), NeuralGrid 128x128 epoch time at
# batch 256 against the original's 5.41 s, and the GLE 10-seed ensemble's examples/s.
# The work is benchmarks/device_check.py; this script finds a Python whose JAX sees the GPU and
# the data the machine cannot fetch. Records go to $OUT (the device machine copies it back), else
# runs/device-check/ -- never into results/ (the lead publishes).
#
#   bash benchmarks/device.sh --pack     # here, once: copy MNIST + Fashion-MNIST into runs/device-pack/
#   bash benchmarks/device.sh            # on the device machine (full sizes)
#   bash benchmarks/device.sh --quick    # anywhere: tiny sizes, about a minute on a CPU
#   (other flags go to device_check.py: --parts gridnet,gle, --out DIR, --allow-cpu)
#
# Device tool call: command `bash benchmarks/device.sh`, carry ["runs/device-pack"], timeout_s 540;
# DEVICE_CHECK_COMMIT=<sha> before it records the commit (the copied tree may have no .git).
#
# Python there: the device machine reaches no package registry, so `make env` cannot build .venv
# there and jax[cuda12] cannot be installed there; nor can it be carried (jaxlib and the CUDA
# wheels are far over the tool's 64 MiB). Its image's python3 already has JAX with the CUDA 13
# plugin, optax, numpy, sympy, matplotlib and tqdm -- everything these parts import (mnist1d is
# not needed: GLE runs on random sequences). So this script takes the first of
# $DEVICE_CHECK_PYTHON, .venv/bin/python, python3, python whose JAX sees an accelerator (else the
# first that imports gridlib, and says plainly that it is a CPU), with the repository on
# PYTHONPATH. Small missing pure-Python packages can travel as wheels in runs/device-pack/wheels/
# (installed with --no-index into /tmp). On a machine with a GPU and network access instead:
#   python3 -m venv .venv-gpu && .venv-gpu/bin/pip install -r requirements-lock.txt "jax[cuda12]==0.10.2"
#   .venv-gpu/bin/pip install --no-deps -e . && DEVICE_CHECK_PYTHON=.venv-gpu/bin/python bash benchmarks/device.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PACK=runs/device-pack

if [ "${1:-}" = "--pack" ]; then
  shift
  py=.venv/bin/python; [ -x "$py" ] || py=python3
  exec "$py" benchmarks/device_check.py --pack "$@"
fi

# The data sets, packed here and carried (the device machine cannot fetch them). Only where no
# data cache exists (the device machine): a run here reads the usual cache, because the data
# module writes decoded copies into the folder it reads, and those would push the carried pack
# over the device tool's 64 MiB.
if [ -z "${GRIDLIB_DATA:-}" ] && [ -d "$PACK/data" ] && ! compgen -G "$HOME/.cache/gridlib/*" >/dev/null; then
  export GRIDLIB_DATA="$ROOT/$PACK/data"
fi
# Carried wheels, if any (README of the device tool: --no-index into a folder on PYTHONPATH).
if compgen -G "$PACK/wheels/*.whl" >/dev/null; then
  site=/tmp/gridlib-device-site
  if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
       --target "$site" "$PACK"/wheels/*.whl; then
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "warning: the carried wheels in $PACK/wheels did not install" >&2
  fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
[ -n "${JAX_PLATFORMS:-}" ] && echo "note: JAX_PLATFORMS=$JAX_PLATFORMS is set and limits what JAX may use"

probe='import jax, gridlib.gridnet.experiments, gridlib.neuralgrid.experiments, gridlib.gle.mnist1d
print(jax.default_backend(), jax.__version__)'
chosen="" fallback=""
for c in "${DEVICE_CHECK_PYTHON:-}" .venv/bin/python python3 python; do
  [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 || continue
  said=$(timeout 180 "$c" -c "$probe" 2>&1 | tail -n 1)
  case "$said" in
    cpu\ *) echo "python: $c -> JAX backend ${said}"; [ -n "$fallback" ] || fallback=$c ;;
    gpu\ *|cuda\ *|rocm\ *|tpu\ *) echo "python: $c -> JAX backend ${said}"; chosen=$c; break ;;
    *) echo "python: $c cannot run gridlib: ${said:-no output}" ;;
  esac
done
if [ -z "$chosen" ]; then
  if [ -z "$fallback" ]; then
    echo "error: no Python here imports jax and gridlib's modules; see the header of $0" >&2
    exit 1
  fi
  chosen=$fallback
  echo "NO ACCELERATOR: no Python here has a JAX that sees one; running with $chosen on the CPU"
fi
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

out="${OUT:-$ROOT/runs/device-check}"
mkdir -p "$out"
"$chosen" benchmarks/device_check.py --out "$out" "$@" 2>&1 | tee "$out/device_check.log"
exit "${PIPESTATUS[0]}"
