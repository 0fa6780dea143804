import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A local mock of the Hugging Face Hub: plain node:http on 127.0.0.1 with an ephemeral port,
 * answering the requests @huggingface/hub makes (../shared/reference/hub-protocol.md §3) for
 * model repos held in memory. Never advertises xet. Faults can be injected per path to prove the
 * retry, resume and verify paths.
 */
export interface MockRepoOptions {
  /** Files need `Authorization: Bearer <token>` (a gated repo). */
  readonly gatedToken?: string;
  /** Extra refs (branch or tag name -> the same commit). */
  readonly refs?: readonly string[];
}

interface Repo {
  readonly files: Map<string, Uint8Array>;
  readonly commit: string;
  readonly refs: Set<string>;
  readonly gatedToken: string | undefined;
}

export interface LoggedRequest {
  readonly method: string;
  readonly url: string;
  readonly range: string | undefined;
  readonly authorized: boolean;
}

type Fault = { kind: "status"; status: number; retryAfter?: number } | { kind: "drop"; afterBytes: number } | { kind: "corrupt" };

/** Files at or above this size are LFS (sha256 oids), like large files on the real Hub. */
const LFS_THRESHOLD = 1024;

export class MockHub {
  private readonly repos = new Map<string, Repo>();
  private readonly faults: { match: RegExp; fault: Fault; remaining: number }[] = [];
  readonly log: LoggedRequest[] = [];
  private server: Server | undefined;
  url = "";

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        res.statusCode = 500;
        res.end(String(error));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = undefined;
  }

  /** Adds a model repo; returns its commit sha (deterministic from the contents). */
  addRepo(name: string, files: Record<string, Uint8Array | string>, options: MockRepoOptions = {}): string {
    const map = new Map(Object.entries(files).map(([path, content]) => [path, typeof content === "string" ? new TextEncoder().encode(content) : content]));
    const listing = [...map].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, bytes]) => `${path}:${sha256(bytes)}`).join("\n");
    const commit = createHash("sha1").update(listing).digest("hex");
    this.repos.set(name, { files: map, commit, refs: new Set(["main", ...(options.refs ?? [])]), gatedToken: options.gatedToken });
    return commit;
  }

  /** The next `count` requests whose path matches get this fault. */
  inject(match: RegExp, fault: Fault, count = 1): void {
    this.faults.push({ match, fault, remaining: count });
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  /** Body faults (drop, corrupt) skip the library's 1-byte `Range: bytes=0-0` probe. */
  private takeFault(path: string, range: string | undefined): Fault | undefined {
    const probe = range === "bytes=0-0";
    const entry = this.faults.find((f) => f.remaining > 0 && f.match.test(path) && !(probe && f.fault.kind !== "status"));
    if (entry === undefined) return undefined;
    entry.remaining--;
    return entry.fault;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://mock");
    const path = url.pathname;
    const auth = req.headers.authorization;
    this.log.push({ method: req.method ?? "GET", url: req.url ?? "", range: req.headers.range, authorized: auth !== undefined });
    const fault = this.takeFault(path, req.headers.range);
    if (fault?.kind === "status") {
      res.writeHead(fault.status, { "content-type": "application/json", ...(fault.retryAfter === undefined ? {} : { "retry-after": String(fault.retryAfter) }) });
      res.end(JSON.stringify({ error: `injected ${fault.status}` }));
      return;
    }
    let m: RegExpExecArray | null;
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path))) return this.revision(res, m[1]!, decodeURIComponent(m[2]!));
    if ((m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(path))) return this.tree(res, m[1]!, decodeURIComponent(m[2]!));
    if ((m = /^\/([^/]+\/[^/]+)\/(resolve|raw)\/([^/]+)\/(.+)$/.exec(path))) {
      return this.file(req, res, m[1]!, decodeURIComponent(m[3]!), decodeURIComponent(m[4]!), auth, fault);
    }
    json(res, 404, { error: "Not found" });
  }

  private repoAt(res: ServerResponse, name: string, revision: string): Repo | undefined {
    const repo = this.repos.get(name);
    if (repo === undefined) {
      json(res, 404, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });
      return undefined;
    }
    if (revision !== repo.commit && !repo.refs.has(revision) && revision !== "HEAD") {
      json(res, 404, { error: `Invalid rev id: ${revision}` }, { "x-error-code": "RevisionNotFound" });
      return undefined;
    }
    return repo;
  }

  private revision(res: ServerResponse, name: string, revision: string): void {
    const repo = this.repoAt(res, name, revision);
    if (!repo) return;
    json(res, 200, {
      _id: `id-${name}`,
      id: name,
      sha: repo.commit,
      private: false,
      gated: repo.gatedToken === undefined ? false : "manual",
      downloads: 0,
      likes: 0,
      lastModified: "2026-01-01T00:00:00.000Z",
      pipeline_tag: "text-generation",
      siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
    });
  }

  private tree(res: ServerResponse, name: string, revision: string): void {
    const repo = this.repoAt(res, name, revision);
    if (!repo) return;
    const entries = [...repo.files].sort(([a], [b]) => (a < b ? -1 : 1)).map(([path, bytes]) => {
      if (bytes.byteLength >= LFS_THRESHOLD) {
        const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(bytes)}\nsize ${bytes.byteLength}\n`;
        return { type: "file", oid: gitSha1(new TextEncoder().encode(pointer)), size: bytes.byteLength, path, lfs: { oid: sha256(bytes), size: bytes.byteLength, pointerSize: pointer.length } };
      }
      return { type: "file", oid: gitSha1(bytes), size: bytes.byteLength, path };
    });
    json(res, 200, entries);
  }

  private file(req: IncomingMessage, res: ServerResponse, name: string, revision: string, filePath: string, auth: string | undefined, fault: Fault | undefined): void {
    const repo = this.repoAt(res, name, revision);
    if (!repo) return;
    if (repo.gatedToken !== undefined && auth !== `Bearer ${repo.gatedToken}`) {
      json(res, auth === undefined ? 401 : 403, { error: `Access to model ${name} is restricted. You must have access to it and be authenticated to access it.` });
      return;
    }
    const original = repo.files.get(filePath);
    if (original === undefined) {
      json(res, 404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
      return;
    }
    let bytes = original;
    if (fault?.kind === "corrupt") {
      bytes = original.slice();
      bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    }
    const etag = original.byteLength >= LFS_THRESHOLD ? sha256(original) : gitSha1(original);
    const headers: Record<string, string> = { "content-type": "application/octet-stream", etag: `"${etag}"`, "accept-ranges": "bytes", "x-repo-commit": repo.commit };
    if (original.byteLength >= LFS_THRESHOLD) headers["x-linked-etag"] = `"${etag}"`;
    if (req.method === "HEAD") {
      res.writeHead(200, { ...headers, "content-length": String(bytes.byteLength) });
      res.end();
      return;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    let start = 0;
    let end = bytes.byteLength - 1;
    let status = 200;
    if (range) {
      start = Number(range[1]);
      end = range[2] === "" ? end : Math.min(end, Number(range[2]));
      status = 206;
      headers["content-range"] = `bytes ${start}-${end}/${bytes.byteLength}`;
    }
    const body = bytes.subarray(start, end + 1);
    res.writeHead(status, { ...headers, "content-length": String(body.byteLength) });
    if (fault?.kind === "drop") {
      res.write(body.subarray(0, Math.min(fault.afterBytes, body.byteLength)));
      setTimeout(() => res.socket?.destroy(), 5);
      return;
    }
    res.end(body);
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export function gitSha1(bytes: Uint8Array): string {
  return createHash("sha1").update(`blob ${bytes.byteLength}\0`).update(bytes).digest("hex");
}
