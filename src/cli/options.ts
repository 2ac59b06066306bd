/** The options every command takes (before or after the command's name). */
export interface GlobalOptions {
  backend: string;
  threads?: number;
  dataDir?: string;
  quiet?: boolean;
  /** plugin files (ES modules of define* units), loaded before the command runs */
  plugin: string[];
}
