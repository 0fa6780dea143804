// One `b158 validate` of a GGUF in its own process, on the compiled library.
import { validateGgufReport } from "../dist/index.js";
import { reportUsage } from "./child-report.mjs";

const [path] = process.argv.slice(2);
const started = process.hrtime.bigint();
const report = await validateGgufReport(path);
reportUsage(started, { ok: report.ok, bytesScanned: report.bytesScanned });
