/** One section of `npm run bench`: runs, returns rows for the table and the JSON file. */
export interface BenchSection {
  readonly name: string;
  readonly description: string;
  run(): Promise<Record<string, unknown>[]>;
}
