;; Hand-written WebAssembly kernels for the CPU makers of image/imagenet-c.ts (loaded by kernels.ts;
;; scripts/build-kernels.mjs assembles this file into kernels-wasm.ts). Each computes the same
;; doubles as the JavaScript loop it replaces: the same products and sums in the same order per
;; value, no fused multiply-add, two values at a time in f64x2 lanes. The tests hold them to the
;; plain loops bit for bit.
;;
;; Memory is one linear block that kernels.ts lays out per call (planes, taps); every pointer below
;; is a byte offset into it. Nothing is kept between calls.
(module
  (memory (export "memory") 1)

  ;; A plane of H rows of W float32 values (src) as float64 rows of W + 2P (dst), each row's first and
  ;; last value repeated P times on its side: motion blur's taps then read whole rows with no clamp.
  (func (export "pad_f32") (param $dst i32) (param $src i32) (param $H i32) (param $W i32) (param $P i32)
    (local $y i32) (local $x i32) (local $end i32) (local $v f64)
    (block $done (loop $rows
      (br_if $done (i32.ge_s (local.get $y) (local.get $H)))
      ;; left border: the row's first value
      (local.set $v (f64.promote_f32 (f32.load (local.get $src))))
      (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $P) (i32.const 3))))
      (block $l (loop $left
        (br_if $l (i32.ge_u (local.get $dst) (local.get $end)))
        (f64.store (local.get $dst) (local.get $v))
        (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
        (br $left)))
      ;; the row itself
      (local.set $x (i32.const 0))
      (block $m (loop $mid
        (br_if $m (i32.ge_s (local.get $x) (local.get $W)))
        (f64.store (local.get $dst) (f64.promote_f32 (f32.load (local.get $src))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (local.set $x (i32.add (local.get $x) (i32.const 1)))
        (br $mid)))
      ;; right border: the row's last value
      (local.set $v (f64.promote_f32 (f32.load (i32.sub (local.get $src) (i32.const 4)))))
      (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $P) (i32.const 3))))
      (block $r (loop $right
        (br_if $r (i32.ge_u (local.get $dst) (local.get $end)))
        (f64.store (local.get $dst) (local.get $v))
        (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
        (br $right)))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br $rows))))

  ;; pad_f32 for a float64 plane (snow's layer).
  (func (export "pad_f64") (param $dst i32) (param $src i32) (param $H i32) (param $W i32) (param $P i32)
    (local $y i32) (local $end i32) (local $v f64) (local $row i32)
    (local.set $row (i32.shl (local.get $W) (i32.const 3)))
    (block $done (loop $rows
      (br_if $done (i32.ge_s (local.get $y) (local.get $H)))
      (local.set $v (f64.load (local.get $src)))
      (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $P) (i32.const 3))))
      (block $l (loop $left
        (br_if $l (i32.ge_u (local.get $dst) (local.get $end)))
        (f64.store (local.get $dst) (local.get $v))
        (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
        (br $left)))
      (memory.copy (local.get $dst) (local.get $src) (local.get $row))
      (local.set $dst (i32.add (local.get $dst) (local.get $row)))
      (local.set $src (i32.add (local.get $src) (local.get $row)))
      (local.set $v (f64.load (i32.sub (local.get $src) (i32.const 8))))
      (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $P) (i32.const 3))))
      (block $r (loop $right
        (br_if $r (i32.ge_u (local.get $dst) (local.get $end)))
        (f64.store (local.get $dst) (local.get $v))
        (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
        (br $right)))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br $rows))))

  ;; Byte offset from output value (y, x) to the value tap i reads, row y − dy_i clamped to the
  ;; plane, column x − dx_i in the padded row (taps: n weights f64, then n dy i32, then n dx i32).
  (func $tap (param $pad i32) (param $out i32) (param $y i32) (param $H i32) (param $W i32) (param $P i32)
             (param $taps i32) (param $n i32) (param $i i32) (result i32)
    (local $sy i32)
    (local.set $sy (i32.sub (local.get $y)
      (i32.load (i32.add (i32.add (local.get $taps) (i32.shl (local.get $n) (i32.const 3))) (i32.shl (local.get $i) (i32.const 2))))))
    (if (i32.lt_s (local.get $sy) (i32.const 0)) (then (local.set $sy (i32.const 0))))
    (if (i32.ge_s (local.get $sy) (local.get $H)) (then (local.set $sy (i32.sub (local.get $H) (i32.const 1)))))
    ;; pad + 8·(sy·(W + 2P) + P − dx_i) − (out + 8·y·W): added to an output value's address
    (i32.sub
      (i32.add (local.get $pad)
        (i32.shl
          (i32.sub
            (i32.add (i32.mul (local.get $sy) (i32.add (local.get $W) (i32.shl (local.get $P) (i32.const 1)))) (local.get $P))
            (i32.load (i32.add (i32.add (local.get $taps) (i32.mul (local.get $n) (i32.const 12))) (i32.shl (local.get $i) (i32.const 2)))))
          (i32.const 3)))
      (i32.add (local.get $out) (i32.shl (i32.mul (local.get $y) (local.get $W)) (i32.const 3)))))

  (func $weight (param $taps i32) (param $i i32) (result v128)
    (f64x2.splat (f64.load (i32.add (local.get $taps) (i32.shl (local.get $i) (i32.const 3))))))

  ;; Motion blur's sums (image/imagenet-c.ts shiftAddRow): out[y, x] = Σ_i w_i·pad[clamp(y − dy_i), P + x − dx_i],
  ;; taps in order from a zero, into a float64 plane H×W. Four taps a pass over a row (their sum
  ;; in a register), then the rest one a pass; an odd last column in scalar doubles.
  (func (export "shift_add") (param $out i32) (param $pad i32) (param $H i32) (param $W i32) (param $P i32)
                             (param $taps i32) (param $n i32)
    (local $y i32) (local $i i32) (local $x i32) (local $row i32) (local $end i32) (local $last i32)
    (local $o0 i32) (local $o1 i32) (local $o2 i32) (local $o3 i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $s v128)
    (block $done (loop $rows
      (br_if $done (i32.ge_s (local.get $y) (local.get $H)))
      (local.set $row (i32.add (local.get $out) (i32.shl (i32.mul (local.get $y) (local.get $W)) (i32.const 3))))
      (local.set $end (i32.add (local.get $row) (i32.shl (local.get $W) (i32.const 3))))
      ;; the last address where two values still fit
      (local.set $last (i32.sub (local.get $end) (i32.const 16)))
      (memory.fill (local.get $row) (i32.const 0) (i32.shl (local.get $W) (i32.const 3)))
      (local.set $i (i32.const 0))
      (block $fours (loop $four
        (br_if $fours (i32.gt_s (i32.add (local.get $i) (i32.const 4)) (local.get $n)))
        (local.set $a0 (call $weight (local.get $taps) (local.get $i)))
        (local.set $a1 (call $weight (local.get $taps) (i32.add (local.get $i) (i32.const 1))))
        (local.set $a2 (call $weight (local.get $taps) (i32.add (local.get $i) (i32.const 2))))
        (local.set $a3 (call $weight (local.get $taps) (i32.add (local.get $i) (i32.const 3))))
        (local.set $o0 (call $tap (local.get $pad) (local.get $out) (local.get $y) (local.get $H) (local.get $W) (local.get $P) (local.get $taps) (local.get $n) (local.get $i)))
        (local.set $o1 (call $tap (local.get $pad) (local.get $out) (local.get $y) (local.get $H) (local.get $W) (local.get $P) (local.get $taps) (local.get $n) (i32.add (local.get $i) (i32.const 1))))
        (local.set $o2 (call $tap (local.get $pad) (local.get $out) (local.get $y) (local.get $H) (local.get $W) (local.get $P) (local.get $taps) (local.get $n) (i32.add (local.get $i) (i32.const 2))))
        (local.set $o3 (call $tap (local.get $pad) (local.get $out) (local.get $y) (local.get $H) (local.get $W) (local.get $P) (local.get $taps) (local.get $n) (i32.add (local.get $i) (i32.const 3))))
        (local.set $x (local.get $row))
        (block $pairs (loop $pair
          (br_if $pairs (i32.gt_u (local.get $x) (local.get $last)))
          (local.set $s (v128.load (local.get $x)))
          (local.set $s (f64x2.add (local.get $s) (f64x2.mul (local.get $a0) (v128.load (i32.add (local.get $x) (local.get $o0))))))
          (local.set $s (f64x2.add (local.get $s) (f64x2.mul (local.get $a1) (v128.load (i32.add (local.get $x) (local.get $o1))))))
          (local.set $s (f64x2.add (local.get $s) (f64x2.mul (local.get $a2) (v128.load (i32.add (local.get $x) (local.get $o2))))))
          (local.set $s (f64x2.add (local.get $s) (f64x2.mul (local.get $a3) (v128.load (i32.add (local.get $x) (local.get $o3))))))
          (v128.store (local.get $x) (local.get $s))
          (local.set $x (i32.add (local.get $x) (i32.const 16)))
          (br $pair)))
        (if (i32.lt_u (local.get $x) (local.get $end)) (then
          (f64.store (local.get $x)
            (f64.add (f64.add (f64.add (f64.add (f64.load (local.get $x))
              (f64.mul (f64x2.extract_lane 0 (local.get $a0)) (f64.load (i32.add (local.get $x) (local.get $o0)))))
              (f64.mul (f64x2.extract_lane 0 (local.get $a1)) (f64.load (i32.add (local.get $x) (local.get $o1)))))
              (f64.mul (f64x2.extract_lane 0 (local.get $a2)) (f64.load (i32.add (local.get $x) (local.get $o2)))))
              (f64.mul (f64x2.extract_lane 0 (local.get $a3)) (f64.load (i32.add (local.get $x) (local.get $o3))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br $four)))
      (block $ones (loop $one
        (br_if $ones (i32.ge_s (local.get $i) (local.get $n)))
        (local.set $a0 (call $weight (local.get $taps) (local.get $i)))
        (local.set $o0 (call $tap (local.get $pad) (local.get $out) (local.get $y) (local.get $H) (local.get $W) (local.get $P) (local.get $taps) (local.get $n) (local.get $i)))
        (local.set $x (local.get $row))
        (block $pairs1 (loop $pair1
          (br_if $pairs1 (i32.gt_u (local.get $x) (local.get $last)))
          (v128.store (local.get $x) (f64x2.add (v128.load (local.get $x)) (f64x2.mul (local.get $a0) (v128.load (i32.add (local.get $x) (local.get $o0))))))
          (local.set $x (i32.add (local.get $x) (i32.const 16)))
          (br $pair1)))
        (if (i32.lt_u (local.get $x) (local.get $end)) (then
          (f64.store (local.get $x) (f64.add (f64.load (local.get $x))
            (f64.mul (f64x2.extract_lane 0 (local.get $a0)) (f64.load (i32.add (local.get $x) (local.get $o0))))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $one)))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br $rows))))

  ;; count float64 values clipped to [0, 1] and rounded to float32 (v < 0 ? 0 : v > 1 ? 1 : v, then
  ;; the store's rounding): pmax/pmin are exactly those comparisons, f32x4.demote the store's rounding.
  (func (export "clip_f32") (param $dst i32) (param $src i32) (param $count i32)
    (local $end i32) (local $v v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $count) (i32.const 3))))
    (block $pairs (loop $pair
      (br_if $pairs (i32.gt_u (i32.add (local.get $src) (i32.const 16)) (local.get $end)))
      (local.set $v (f64x2.pmin (f64x2.pmax (v128.load (local.get $src)) (f64x2.splat (f64.const 0))) (f64x2.splat (f64.const 1))))
      (v128.store64_lane 0 (local.get $dst) (f32x4.demote_f64x2_zero (local.get $v)))
      (local.set $src (i32.add (local.get $src) (i32.const 16)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
      (br $pair)))
    (if (i32.lt_u (local.get $src) (local.get $end)) (then
      (local.set $v (f64x2.pmin (f64x2.pmax (v128.load64_zero (local.get $src)) (f64x2.splat (f64.const 0))) (f64x2.splat (f64.const 1))))
      (f32.store (local.get $dst) (f32.demote_f64 (f64x2.extract_lane 0 (local.get $v))))))))
