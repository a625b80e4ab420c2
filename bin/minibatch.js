#!/usr/bin/env node
// The `minibatch` command (see src/cli/main.ts).
import { main } from '../dist/cli/main.js';

// A reader that went away (`minibatch train --json | head -1`, stderr piped to a closed process) ends the
// output, not the run with a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

process.exitCode = await main(process.argv.slice(2));
