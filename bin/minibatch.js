#!/usr/bin/env node
// The `minibatch` command (see src/cli/main.ts).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
