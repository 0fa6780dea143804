import { parentPort } from "node:worker_threads";
import { PayloadScanner, PayloadWalk } from "./payload-scan.js";
import type { ScanMessage, ScanReply } from "./scan-helper.js";

/** Validation's second thread (scan-helper.ts): scans the payloads in the chunks the reading thread shares with it. */
let scanners: PayloadScanner[] = [];
let walk: PayloadWalk | undefined;
let memory: Uint8Array | undefined;
let chunkBytes = 0;

const reply = (message: ScanReply) => parentPort!.postMessage(message);

parentPort!.on("message", (message: ScanMessage) => {
  try {
    if (message.kind === "start") {
      scanners = message.ranges.map((range) => new PayloadScanner(range));
      memory = new Uint8Array(message.memory);
      chunkBytes = message.chunkBytes;
      walk = new PayloadWalk(message.ranges, {
        payload: (i, bytes) => scanners[i]!.update(bytes),
        padding: (i, bytes) => scanners[i]!.padding(bytes),
        end: () => undefined,
      });
    } else if (message.kind === "chunk") {
      const at = message.buffer * chunkBytes;
      walk!.feed(memory!.subarray(at, at + message.length), message.position);
      reply({ kind: "free", buffer: message.buffer });
    } else {
      reply({ kind: "done", payloads: scanners.map((scanner) => scanner.finish()) });
    }
  } catch (error) {
    reply({ kind: "error", message: String((error as Error)?.stack ?? error) });
  }
});
