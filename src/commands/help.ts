import { Args, Flags, loadHelpClass } from "@oclif/core";
import { B158Command } from "../cli/base-command.js";
import { unknownCommand } from "../cli/errors.js";

/** `b158 help [command]`: oclif's help, with b158's errors (a mistyped command gets a suggestion, exit 2). */
export default class Help extends B158Command {
  static override summary = "Show help for b158, or for one of its commands.";
  static override description = "Without an argument: every command, with its summary. With one: its usage, arguments, flags, description and examples, as `b158 <command> --help` (or -h) shows them.";
  static override examples = [
    { description: "Every command", command: "<%= config.bin %> help" },
    { description: "One command: usage, arguments, flags and examples (also: b158 convert -h)", command: "<%= config.bin %> help convert" },
  ];
  static override strict = false;
  static override args = { command: Args.string({ required: false, description: "The command to describe, e.g. convert." }) };
  static override flags = { "nested-commands": Flags.boolean({ char: "n", description: "Include all nested commands in the output." }) };

  async run(): Promise<void> {
    const { argv, flags } = await this.parse(Help);
    const words = argv as string[];
    const ids = this.config.commands.filter((c) => !c.hidden).map((c) => c.id);
    if (words.length > 0 && this.config.findCommand(words[0]!) === undefined && this.config.findTopic(words[0]!) === undefined) throw unknownCommand(words[0]!, ids);
    const HelpClass = await loadHelpClass(this.config);
    await new HelpClass(this.config, { ...this.config.pjson.oclif.helpOptions, all: flags["nested-commands"] }).showHelp(words);
  }
}
