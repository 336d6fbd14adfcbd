/**
 * Imported before onnxruntime-node everywhere it is loaded (CLI, daemon, worker, tests): ONNX
 * Runtime 1.30 otherwise starts a telemetry system that queries a Microsoft events host, queues
 * events about the model (producer, graph names, metadata, file names) in
 * ~/.cache/Microsoft/DeveloperTools/.onnxruntime, and leaves /tmp/mat-debug-<pid>.log behind.
 * Audits run on models people may not disclose, often on machines without a network: nothing
 * leaves the machine and nothing is written but where the user asked. The variable is read
 * when the native library starts, so it must be set before the first require; a user who sets
 * it (to anything) keeps their value.
 */
if (process.env.ORT_DISABLE_TELEMETRY === undefined) process.env.ORT_DISABLE_TELEMETRY = '1';

export {};
