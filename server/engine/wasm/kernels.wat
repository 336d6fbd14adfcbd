;; Hand-written WebAssembly kernels for the engine's CPU loops (loaded by kernels.ts;
;; scripts/build-kernels.mjs assembles this file into kernels-wasm.ts). Each computes the same
;; doubles as the JavaScript loop it replaces: the same products and sums in the same order per
;; value, no fused multiply-add, two values at a time in f64x2 lanes. The tests hold them to the
;; plain loops bit for bit.
;;
;; Memory is one linear block that kernels.ts lays out per call (planes, taps); every pointer below
;; is a byte offset into it. Nothing is kept between calls.
(module
  ;; Math.log itself (V8 calls the same C function for an imported Math.log as for JavaScript's,
  ;; so the logs are the same doubles), and image/corrupt.ts logFactorial for k past its table.
  (import "js" "log" (func $log (param f64) (result f64)))
  (import "js" "logFactorial" (func $logFactorial (param f64) (result f64)))
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
      (f32.store (local.get $dst) (f32.demote_f64 (f64x2.extract_lane 0 (local.get $v)))))))
  ;; mulberry32's output for the state it has just stepped to (random.ts mulberryUnit): the same
  ;; 32-bit integer operations, then the unsigned result times 2^-32 (exact).
  (func $unit (param $a i32) (result f64)
    (local $t i32)
    (local.set $t (i32.mul (i32.xor (local.get $a) (i32.shr_u (local.get $a) (i32.const 15))) (i32.or (local.get $a) (i32.const 1))))
    (local.set $t (i32.xor (local.get $t)
      (i32.add (local.get $t) (i32.mul (i32.xor (local.get $t) (i32.shr_u (local.get $t) (i32.const 7))) (i32.or (local.get $t) (i32.const 61))))))
    (f64.mul (f64.convert_i32_u (i32.xor (local.get $t) (i32.shr_u (local.get $t) (i32.const 14)))) (f64.const 0x1p-32)))

  ;; views/corruptions.ts shot() for an image whose values are levels k/255 (as decoded images'
  ;; are): the same Poisson draws. It returns 0 at the first value with λ > 0 that is not a level
  ;; (float32 levels at `levels`, f32[256]), leaving the image to the loop; 1 when done. Per level q (λ below 10 takes
  ;; the inversion, as the loop does, and above it PTRS), at the addresses kernels.ts passes:
  ;;   guide  i32[256·32]   the inversion's guide table (views/corruptions.ts guideTable)
  ;;   cdfAt  i32[256]      the address of its CDF (f64)
  ;;   last   i32[256]      its CDF's last index
  ;;   ptrs   f64[256·6]    λ, log λ, a, b, log(1/α), v_r
  ;;   lf     f64[256]      ln k! below 256
  (func (export "shot") (param $dst i32) (param $src i32) (param $n i32) (param $rate f64) (param $seed i32)
                        (param $levels i32) (param $guide i32) (param $cdfAt i32) (param $last i32) (param $ptrs i32) (param $lf i32)
                        (result i32)
    (local $a i32) (local $end i32) (local $v f64) (local $lambda f64) (local $q i32) (local $u f64) (local $k i32)
    (local $cdf i32) (local $kl i32) (local $o i32) (local $kf f64) (local $y f64)
    (local $L f64) (local $loglam f64) (local $A f64) (local $B f64) (local $logInvalpha f64) (local $vr f64)
    (local $U f64) (local $V f64) (local $us f64) (local $lfk f64) (local $t i32)
    (local.set $a (local.get $seed))
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done (loop $values
      (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
      (local.set $v (f64.promote_f32 (f32.load (local.get $src))))
      (local.set $lambda (f64.mul (local.get $v) (local.get $rate)))
      (block $stored
        (if (i32.eqz (f64.gt (local.get $lambda) (f64.const 0))) (then
          (f32.store (local.get $dst) (f32.const 0))
          (br $stored)))
        ;; its level: q = round(255 v), and v must be level q's float32 (v ≤ 1 here, λ > 0)
        (if (f64.gt (local.get $v) (f64.const 1)) (then (return (i32.const 0))))
        (local.set $q (i32.trunc_f64_s (f64.nearest (f64.mul (local.get $v) (f64.const 255)))))
        (if (f32.ne (f32.load (i32.add (local.get $levels) (i32.shl (local.get $q) (i32.const 2)))) (f32.demote_f64 (local.get $v)))
          (then (return (i32.const 0))))
        (if (f64.lt (local.get $lambda) (f64.const 10))
          (then
            (local.set $a (i32.add (local.get $a) (i32.const 0x6d2b79f5)))
            (local.set $u (block (result f64)
                (local.set $t (i32.mul (i32.xor (local.get $a) (i32.shr_u (local.get $a) (i32.const 15))) (i32.or (local.get $a) (i32.const 1))))
                (local.set $t (i32.xor (local.get $t)
                  (i32.add (local.get $t) (i32.mul (i32.xor (local.get $t) (i32.shr_u (local.get $t) (i32.const 7))) (i32.or (local.get $t) (i32.const 61))))))
                (f64.mul (f64.convert_i32_u (i32.xor (local.get $t) (i32.shr_u (local.get $t) (i32.const 14)))) (f64.const 0x1p-32))))
            (local.set $cdf (i32.load (i32.add (local.get $cdfAt) (i32.shl (local.get $q) (i32.const 2)))))
            (local.set $kl (i32.load (i32.add (local.get $last) (i32.shl (local.get $q) (i32.const 2)))))
            (local.set $k (i32.load (i32.add (local.get $guide)
              (i32.shl (i32.add (i32.shl (local.get $q) (i32.const 5)) (i32.trunc_f64_u (f64.mul (local.get $u) (f64.const 32)))) (i32.const 2)))))
            (block $found (loop $search
              (br_if $found (i32.ge_s (local.get $k) (local.get $kl)))
              (br_if $found (i32.eqz (f64.gt (local.get $u) (f64.load (i32.add (local.get $cdf) (i32.shl (local.get $k) (i32.const 3)))))))
              (local.set $k (i32.add (local.get $k) (i32.const 1)))
              (br $search)))
            (local.set $kf (f64.convert_i32_s (local.get $k))))
          (else
            (local.set $o (i32.add (local.get $ptrs) (i32.mul (local.get $q) (i32.const 48))))
            (local.set $L (f64.load (local.get $o)))
            (local.set $loglam (f64.load offset=8 (local.get $o)))
            (local.set $A (f64.load offset=16 (local.get $o)))
            (local.set $B (f64.load offset=24 (local.get $o)))
            (local.set $logInvalpha (f64.load offset=32 (local.get $o)))
            (local.set $vr (f64.load offset=40 (local.get $o)))
            (block $accepted (loop $draw
              (local.set $a (i32.add (local.get $a) (i32.const 0x6d2b79f5)))
              (local.set $U (f64.sub (block (result f64)
                (local.set $t (i32.mul (i32.xor (local.get $a) (i32.shr_u (local.get $a) (i32.const 15))) (i32.or (local.get $a) (i32.const 1))))
                (local.set $t (i32.xor (local.get $t)
                  (i32.add (local.get $t) (i32.mul (i32.xor (local.get $t) (i32.shr_u (local.get $t) (i32.const 7))) (i32.or (local.get $t) (i32.const 61))))))
                (f64.mul (f64.convert_i32_u (i32.xor (local.get $t) (i32.shr_u (local.get $t) (i32.const 14)))) (f64.const 0x1p-32))) (f64.const 0.5)))
              (local.set $a (i32.add (local.get $a) (i32.const 0x6d2b79f5)))
              (local.set $V (block (result f64)
                (local.set $t (i32.mul (i32.xor (local.get $a) (i32.shr_u (local.get $a) (i32.const 15))) (i32.or (local.get $a) (i32.const 1))))
                (local.set $t (i32.xor (local.get $t)
                  (i32.add (local.get $t) (i32.mul (i32.xor (local.get $t) (i32.shr_u (local.get $t) (i32.const 7))) (i32.or (local.get $t) (i32.const 61))))))
                (f64.mul (f64.convert_i32_u (i32.xor (local.get $t) (i32.shr_u (local.get $t) (i32.const 14)))) (f64.const 0x1p-32))))
              (local.set $us (f64.sub (f64.const 0.5) (f64.abs (local.get $U))))
              (local.set $kf (f64.floor (f64.add (f64.add
                (f64.mul (f64.add (f64.div (f64.mul (f64.const 2) (local.get $A)) (local.get $us)) (local.get $B)) (local.get $U))
                (local.get $L)) (f64.const 0.43))))
              (br_if $accepted (i32.and (f64.ge (local.get $us) (f64.const 0.07)) (f64.le (local.get $V) (local.get $vr))))
              (br_if $draw (f64.lt (local.get $kf) (f64.const 0)))
              (br_if $draw (i32.and (f64.lt (local.get $us) (f64.const 0.013)) (f64.gt (local.get $V) (local.get $us))))
              (local.set $lfk (if (result f64) (f64.lt (local.get $kf) (f64.const 256))
                (then (f64.load (i32.add (local.get $lf) (i32.shl (i32.trunc_f64_s (local.get $kf)) (i32.const 3)))))
                (else (call $logFactorial (local.get $kf)))))
              (br_if $accepted (f64.le
                (f64.sub (f64.add (call $log (local.get $V)) (local.get $logInvalpha))
                         (call $log (f64.add (f64.div (local.get $A) (f64.mul (local.get $us) (local.get $us))) (local.get $B))))
                (f64.sub (f64.add (f64.neg (local.get $L)) (f64.mul (local.get $kf) (local.get $loglam))) (local.get $lfk))))
              (br $draw)))))
        (local.set $y (f64.div (local.get $kf) (local.get $rate)))
        (f32.store (local.get $dst) (f32.demote_f64 (select (f64.const 0)
          (select (f64.const 1) (local.get $y) (f64.gt (local.get $y) (f64.const 1)))
          (f64.lt (local.get $y) (f64.const 0))))))
      (local.set $src (i32.add (local.get $src) (i32.const 4)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
      (br $values)))
    (i32.const 1))

  ;; mulberry32's outputs for four consecutive states at once (the state steps by a constant, so
  ;; draw j's state is the seed's + (j + 1)·step): the unsigned 32-bit results.
  (func $hash4 (param $s v128) (result v128)
    (local $t v128)
    (local.set $t (i32x4.mul (v128.xor (local.get $s) (i32x4.shr_u (local.get $s) (i32.const 15))) (v128.or (local.get $s) (i32x4.splat (i32.const 1)))))
    (local.set $t (v128.xor (local.get $t)
      (i32x4.add (local.get $t) (i32x4.mul (v128.xor (local.get $t) (i32x4.shr_u (local.get $t) (i32.const 7))) (v128.or (local.get $t) (i32x4.splat (i32.const 61)))))))
    (v128.xor (local.get $t) (i32x4.shr_u (local.get $t) (i32.const 14))))

  ;; count draws of mulberry32 from state `seed` as the doubles u it returns, two a lane pair.
  (func (export "unit_doubles") (param $dst i32) (param $count i32) (param $seed i32)
    (local $s v128) (local $t v128) (local $step v128) (local $end i32) (local $a i32) (local $scale v128)
    (local.set $a (local.get $seed))
    (local.set $s (i32x4.add (i32x4.splat (local.get $seed))
      (v128.const i32x4 0x6d2b79f5 0xda56f3ea 0x47826ddf 0xb4ade7d4)))
    (local.set $step (i32x4.splat (i32.const 0xb4ade7d4)))
    (local.set $scale (f64x2.splat (f64.const 0x1p-32)))
    (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $count) (i32.const 3))))
    (block $blocks (loop $block
      (br_if $blocks (i32.gt_u (i32.add (local.get $dst) (i32.const 32)) (local.get $end)))
      (local.set $t (call $hash4 (local.get $s)))
      (v128.store (local.get $dst) (f64x2.mul (f64x2.convert_low_i32x4_u (local.get $t)) (local.get $scale)))
      (v128.store offset=16 (local.get $dst)
        (f64x2.mul (f64x2.convert_low_i32x4_u (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $t) (local.get $t))) (local.get $scale)))
      (local.set $s (i32x4.add (local.get $s) (local.get $step)))
      (local.set $a (i32.add (local.get $a) (i32.const 0xb4ade7d4)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
      (br $block)))
    (block $done (loop $draws
      (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
      (local.set $a (i32.add (local.get $a) (i32.const 0x6d2b79f5)))
      (f64.store (local.get $dst) (call $unit (local.get $a)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 8)))
      (br $draws))))

  ;; count draws of mulberry32 from state `seed` as float32 lo + span·u (u the draw, in doubles as
  ;; JavaScript computes it, then rounded once to float32), four at a time. With `radii` set, the
  ;; draws are gaussian()'s (radius, angle) pairs, and a radius draw of exactly 0 (which gaussian()
  ;; draws again, shifting every later draw) stops it: it returns 0 and the caller runs its loop.
  ;; Returns 1 when done.
  (func (export "uniforms") (param $dst i32) (param $count i32) (param $seed i32) (param $lo f64) (param $span f64) (param $radii i32) (result i32)
    (local $s v128) (local $t v128) (local $step v128) (local $end i32) (local $a i32) (local $u f64)
    (local $vlo v128) (local $vspan v128) (local $scale v128)
    (local.set $a (local.get $seed))
    (local.set $s (i32x4.add (i32x4.splat (local.get $seed))
      (v128.const i32x4 0x6d2b79f5 0xda56f3ea 0x47826ddf 0xb4ade7d4)))
    (local.set $step (i32x4.splat (i32.const 0xb4ade7d4)))
    (local.set $vlo (f64x2.splat (local.get $lo)))
    (local.set $vspan (f64x2.splat (local.get $span)))
    (local.set $scale (f64x2.splat (f64.const 0x1p-32)))
    (local.set $end (i32.add (local.get $dst) (i32.shl (local.get $count) (i32.const 2))))
    (block $blocks (loop $block
      (br_if $blocks (i32.gt_u (i32.add (local.get $dst) (i32.const 16)) (local.get $end)))
      (local.set $t (call $hash4 (local.get $s)))
      (if (local.get $radii) (then
        ;; lanes 0 and 2 are radius draws (count and the start are even)
        (if (v128.any_true (v128.and (i32x4.eq (local.get $t) (i32x4.splat (i32.const 0))) (v128.const i32x4 -1 0 -1 0)))
          (then (return (i32.const 0))))))
      (v128.store (local.get $dst)
        (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
          (f32x4.demote_f64x2_zero (f64x2.add (local.get $vlo) (f64x2.mul (local.get $vspan)
            (f64x2.mul (f64x2.convert_low_i32x4_u (local.get $t)) (local.get $scale)))))
          (f32x4.demote_f64x2_zero (f64x2.add (local.get $vlo) (f64x2.mul (local.get $vspan)
            (f64x2.mul (f64x2.convert_low_i32x4_u (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $t) (local.get $t))) (local.get $scale)))))))
      (local.set $s (i32x4.add (local.get $s) (local.get $step)))
      (local.set $a (i32.add (local.get $a) (i32.const 0xb4ade7d4)))
      (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
      (br $block)))
    ;; the last one to three draws
    (block $done (loop $draws
      (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
      (local.set $a (i32.add (local.get $a) (i32.const 0x6d2b79f5)))
      (local.set $u (call $unit (local.get $a)))
      (if (i32.and (local.get $radii) (f64.eq (local.get $u) (f64.const 0))) (then (return (i32.const 0))))
      (f32.store (local.get $dst) (f32.demote_f64 (f64.add (local.get $lo) (f64.mul (local.get $span) (local.get $u)))))
      (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
      (br $draws)))
    (i32.const 1))

  ;; JavaScript's Math.round in each lane: the nearest integer, halves up; as V8 computes it
  ;; (ceil, then one less if that is more than half above), so the same double for every input.
  (func $round2 (param $v v128) (result v128)
    (local $r v128)
    (local.set $r (f64x2.ceil (local.get $v)))
    (v128.bitselect
      (f64x2.sub (local.get $r) (f64x2.splat (f64.const 1)))
      (local.get $r)
      (f64x2.gt (f64x2.sub (local.get $r) (f64x2.splat (f64.const 0.5))) (local.get $v))))

  ;; Snow's layer (image/imagenet-c.ts snow): for y < hs, x < ws,
  ;;   layer[y·W + x] = round(255·b[y, x])/255 + round(255·b[hs−1−y, ws−1−x])/255
  ;; of the blurred plane b (rows of zw values), zero elsewhere; H×W float64 at `layer`.
  (func (export "snow_layer") (param $layer i32) (param $b i32) (param $zw i32) (param $hs i32) (param $ws i32) (param $H i32) (param $W i32)
    (local $y i32) (local $x i32) (local $dst i32) (local $fwd i32) (local $rev i32) (local $k v128)
    (local.set $k (f64x2.splat (f64.const 255)))
    (memory.fill (local.get $layer) (i32.const 0) (i32.shl (i32.mul (local.get $H) (local.get $W)) (i32.const 3)))
    (block $rows (loop $row
      (br_if $rows (i32.ge_s (local.get $y) (local.get $hs)))
      (local.set $dst (i32.add (local.get $layer) (i32.shl (i32.mul (local.get $y) (local.get $W)) (i32.const 3))))
      (local.set $fwd (i32.add (local.get $b) (i32.shl (i32.mul (local.get $y) (local.get $zw)) (i32.const 3))))
      ;; the mirrored row's value for x = 0, read backwards
      (local.set $rev (i32.add (local.get $b) (i32.shl
        (i32.add (i32.mul (i32.sub (i32.sub (local.get $hs) (i32.const 1)) (local.get $y)) (local.get $zw)) (i32.sub (local.get $ws) (i32.const 1)))
        (i32.const 3))))
      (local.set $x (i32.const 0))
      (block $pairs (loop $pair
        (br_if $pairs (i32.gt_s (i32.add (local.get $x) (i32.const 2)) (local.get $ws)))
        (v128.store (local.get $dst)
          (f64x2.add
            (f64x2.div (call $round2 (f64x2.mul (v128.load (local.get $fwd)) (local.get $k))) (local.get $k))
            ;; values x and x + 1 of the mirrored row sit at rev and rev − 8: load from rev − 8, swap the lanes
            (f64x2.div (call $round2 (f64x2.mul
              (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (v128.load (i32.sub (local.get $rev) (i32.const 8))) (v128.load (i32.sub (local.get $rev) (i32.const 8))))
              (local.get $k))) (local.get $k))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $fwd (i32.add (local.get $fwd) (i32.const 16)))
        (local.set $rev (i32.sub (local.get $rev) (i32.const 16)))
        (local.set $x (i32.add (local.get $x) (i32.const 2)))
        (br $pair)))
      (if (i32.lt_s (local.get $x) (local.get $ws)) (then
        (f64.store (local.get $dst)
          (f64x2.extract_lane 0 (f64x2.add
            (f64x2.div (call $round2 (f64x2.mul (v128.load64_zero (local.get $fwd)) (local.get $k))) (local.get $k))
            (f64x2.div (call $round2 (f64x2.mul (v128.load64_zero (local.get $rev)) (local.get $k))) (local.get $k)))))))
      (local.set $y (i32.add (local.get $y) (i32.const 1)))
      (br $row))))

  ;; Snow's mix (image/imagenet-c.ts snow): per pixel p of C planes of n float32 values (src),
  ;;   grey = 0.299 R + 0.587 G + 0.114 B (C = 3; else the one plane), lit = 1.5·grey + 0.5,
  ;;   dst[c, p] = clip(mix·x + keep·(x > lit ? x : lit) + layer[p]), x = src[c, p],
  ;; in doubles as the loop sums them, two pixels at a time; float32 out.
  (func (export "snow_mix") (param $dst i32) (param $src i32) (param $layer i32) (param $C i32) (param $n i32) (param $mix f64) (param $keep f64)
    (local $p i32) (local $c i32) (local $plane i32) (local $at i32) (local $grey v128) (local $lit v128) (local $add v128) (local $x v128) (local $v v128)
    (local $vmix v128) (local $vkeep v128)
    (local.set $vmix (f64x2.splat (local.get $mix)))
    (local.set $vkeep (f64x2.splat (local.get $keep)))
    (local.set $plane (i32.shl (local.get $n) (i32.const 2)))
    (block $done (loop $pixels
      (br_if $done (i32.ge_s (local.get $p) (local.get $n)))
      ;; two pixels, or the last one alone (its second lane is a copy and is not stored)
      (local.set $at (i32.add (local.get $src) (i32.shl (local.get $p) (i32.const 2))))
      (if (i32.eq (local.get $C) (i32.const 3))
        (then
          (local.set $grey (f64x2.add (f64x2.add
            (f64x2.mul (f64x2.splat (f64.const 0.299)) (call $load2 (local.get $at) (local.get $p) (local.get $n)))
            (f64x2.mul (f64x2.splat (f64.const 0.587)) (call $load2 (i32.add (local.get $at) (local.get $plane)) (local.get $p) (local.get $n))))
            (f64x2.mul (f64x2.splat (f64.const 0.114)) (call $load2 (i32.add (local.get $at) (i32.shl (local.get $plane) (i32.const 1))) (local.get $p) (local.get $n))))))
        (else (local.set $grey (call $load2 (local.get $at) (local.get $p) (local.get $n)))))
      (local.set $lit (f64x2.add (f64x2.mul (local.get $grey) (f64x2.splat (f64.const 1.5))) (f64x2.splat (f64.const 0.5))))
      (local.set $add (if (result v128) (i32.lt_s (i32.add (local.get $p) (i32.const 1)) (local.get $n))
        (then (v128.load (i32.add (local.get $layer) (i32.shl (local.get $p) (i32.const 3)))))
        (else (f64x2.splat (f64.load (i32.add (local.get $layer) (i32.shl (local.get $p) (i32.const 3))))))))
      (local.set $c (i32.const 0))
      (block $planes (loop $channel
        (br_if $planes (i32.ge_s (local.get $c) (local.get $C)))
        (local.set $x (call $load2 (i32.add (local.get $at) (i32.mul (local.get $c) (local.get $plane))) (local.get $p) (local.get $n)))
        (local.set $v (f64x2.add (f64x2.add (f64x2.mul (local.get $vmix) (local.get $x)) (f64x2.mul (local.get $vkeep) (f64x2.pmax (local.get $lit) (local.get $x))))
          (local.get $add)))
        (local.set $v (f32x4.demote_f64x2_zero (f64x2.pmin (f64x2.pmax (local.get $v) (f64x2.splat (f64.const 0))) (f64x2.splat (f64.const 1)))))
        (if (i32.lt_s (i32.add (local.get $p) (i32.const 1)) (local.get $n))
          (then (v128.store64_lane 0 (i32.add (local.get $dst) (i32.add (i32.shl (local.get $p) (i32.const 2)) (i32.mul (local.get $c) (local.get $plane)))) (local.get $v)))
          (else (v128.store32_lane 0 (i32.add (local.get $dst) (i32.add (i32.shl (local.get $p) (i32.const 2)) (i32.mul (local.get $c) (local.get $plane)))) (local.get $v))))
        (local.set $c (i32.add (local.get $c) (i32.const 1)))
        (br $channel)))
      (local.set $p (i32.add (local.get $p) (i32.const 2)))
      (br $pixels))))

  ;; The float32 values at `at` and at + 4 as doubles, or the one at `at` twice when p is the last of n.
  (func $load2 (param $at i32) (param $p i32) (param $n i32) (result v128)
    (if (result v128) (i32.lt_s (i32.add (local.get $p) (i32.const 1)) (local.get $n))
      (then (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $at))))
      (else (f64x2.splat (f64.promote_f32 (f32.load (local.get $at)))))))
)
