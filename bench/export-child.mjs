// One GGUF export in its own process, on the compiled library.
import { exportGguf, openB158File } from "../dist/index.js";
import { reportUsage } from "./child-report.mjs";

const [source, output, embeddings] = process.argv.slice(2);
const started = process.hrtime.bigint();
const file = await openB158File(source);
const summary = await exportGguf(file, { output, force: true, embeddings });
await file.close();
reportUsage(started, { outputBytes: summary.size });
