#!/usr/bin/env bash
# The README's demo: the learnt coefficients and NeuralGrok against the baselines on (a*b) mod 47, then the table and plots.
#   bash experiments/demo.sh [OUT]     (default OUT: demo/; finished runs in OUT are kept and skipped)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo}
neuralgrok grid experiments/grids/demo.toml --out "$OUT"
neuralgrok report "$OUT"/runs/*[0-9]/ --out "$OUT"   # not the *.incomplete folders
echo "figures: $OUT/accuracy.png $OUT/age.png $OUT/age_scaled.png $OUT/weight_norm.png $OUT/amp_pn_std.png $OUT/amplifier_shape.png"
