// One `b158 validate` of a GGUF or a .b158 in its own process, on the compiled library.
import { validateGgufReport } from "../dist/index.js";
import { validateB158Report } from "../dist/report/b158-report.js";
import { reportUsage } from "./child-report.mjs";

const [path] = process.argv.slice(2);
const started = process.hrtime.bigint();
const report = path.endsWith(".b158") ? await validateB158Report(path) : await validateGgufReport(path);
reportUsage(started, { ok: report.ok, bytesScanned: report.bytesScanned });
