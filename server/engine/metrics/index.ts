/** Reusable metrics: ranking (AUROC, FPR at TPR, ROC), calibration (ECE, reliability), statistics. */
export { auroc, downsample, fprAtTpr, rocCurve, trapezoidArea, type FprAtTpr } from './ranking';
export { binIndex, calibration, type Calibration, type ReliabilityBin } from './calibration';
export { histogram, mean, type Histogram } from './stats';
