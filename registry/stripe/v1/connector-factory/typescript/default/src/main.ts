#!/usr/bin/env node
/** Entry point of this connector. See README.md; the runtime is in src/runtime/. */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "./runtime/cli.js";

// dist/main.js -> the implementation folder (where connector.json is).
const implDir = resolve(dirname(fileURLToPath(import.meta.url)), "..");

// A reader that goes away (`... | head`) makes writes fail with EPIPE, reported asynchronously.
// Remember it and fail the next write, so the run ends with an ERROR line instead of a crash.
let stdoutError: Error | null = null;
process.stdout.on("error", (error: Error) => {
  stdoutError = error;
});
process.stderr.on("error", () => {
  // nowhere left to report it
});
const stdout = {
  write(text: string): boolean {
    if (stdoutError !== null) throw stdoutError;
    return process.stdout.write(text);
  },
};

process.exitCode = await main(implDir, process.argv.slice(2), { stdout, hardExit: true });
