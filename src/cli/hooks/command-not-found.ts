import type { Hook } from "@oclif/core";
import { B158Error } from "../../errors.js";
import { renderError } from "../errors.js";
import { closest } from "../suggest.js";

/**
 * `b158 conver ...`: a coded usage error (exit 2) that names the closest command, never a guess
 * run on the user's behalf. Under --json, the error document on stdout like every other failure.
 */
const hook: Hook.CommandNotFound = async function (options) {
  const ids = options.config.commands.filter((c) => !c.hidden).map((c) => c.id.replaceAll(":", " "));
  // with a space as topic separator oclif hands over the words it could not place: the first is the command
  const typed = options.id.split(":")[0]!;
  const guess = closest(typed, ids);
  const looksLikeInput = /[/\\.]/.test(typed);
  const hint =
    guess !== undefined
      ? `Did you mean b158 ${guess}? (b158 help lists every command)`
      : looksLikeInput
        ? `To see what it holds: b158 inspect ${typed}. b158 help lists every command.`
        : `Commands: ${ids.sort().join(", ")}. b158 help <command> describes one.`;
  const error = new B158Error("E_USAGE", `"${typed}" is not a b158 command`, { hint, details: { command: typed, ...(guess === undefined ? {} : { suggestion: guess }) } });
  if (options.argv?.includes("--json")) process.stdout.write(`${JSON.stringify({ error: error.toJSON() }, null, 2)}\n`);
  else process.stderr.write(`${renderError(error)}\n`);
  this.exit(error.exitCode);
};

export default hook;
