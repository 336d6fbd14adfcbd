/**
 * The loss on one row of logits and its gradient with respect to them, as the toy gradient
 * oracles of the attack tests compute it: cross-entropy of the label, or the targeted DLR loss
 * (through attacks/dlr.ts, itself checked against finite differences).
 */
import { dlrTargeted, dlrTargetedGrad } from '../../../server/engine/attacks/dlr';

export function logitLoss(z: number[], label: number, loss: string, target?: number): { loss: number; grad: ArrayLike<number> } {
  if (loss === 'dlr-targeted') {
    return { loss: dlrTargeted(z, 0, z.length, label, target!), grad: dlrTargetedGrad(z, 0, z.length, label, target!) };
  }
  const mx = Math.max(...z);
  const e = z.map((v) => Math.exp(v - mx));
  const s = e.reduce((a, v) => a + v, 0);
  return { loss: mx + Math.log(s) - z[label], grad: e.map((v, k) => v / s - (k === label ? 1 : 0)) };
}
