import type { Hook } from "@oclif/core";
import { renderError, unknownCommand } from "../errors.js";

/**
 * `b158 conver ...`: a coded usage error (exit 2) that names the closest command, never a guess
 * run on the user's behalf. Under --json, the error document on stdout like every other failure.
 */
const hook: Hook.CommandNotFound = async function (options) {
  // with a space as topic separator oclif hands over the words it could not place: the first is the command
  const error = unknownCommand(options.id.split(":")[0]!, options.config.commands.filter((c) => !c.hidden).map((c) => c.id));
  if (options.argv?.includes("--json")) process.stdout.write(`${JSON.stringify({ error: error.toJSON() }, null, 2)}\n`);
  else process.stderr.write(`${renderError(error)}\n`);
  this.exit(error.exitCode);
};

export default hook;
