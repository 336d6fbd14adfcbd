/**
 * Views: every image a probe classifies that is not the image itself (shifted crops, embeddings,
 * noise, blur, pixelation, photometric changes, views the CPU made) is made here, by ONNX
 * Runtime, on the model's own execution provider. A probe states a plan (plan.ts); the module
 * builds it as an ONNX graph (graph.ts) in front of the model in one session (session.ts).
 */
export { checkPlan, planKey, slotCounts, type ViewInputs, type ViewOp, type ViewPlan, type ViewSource } from './plan';
export { buildViewGraph, standaloneViewModel } from './graph';
export { balancedStep, declareViews, makeViews, modelChunkRows, modelChunks, releaseViews, setSharedViews, viewMaker, runPasses, runViews, setModelChunkRows, setViewRunPasses, setViewKernels, sourcesPerRun, viewsFor, type ViewFeatures, type ViewPrediction, type ViewRunner } from './session';
