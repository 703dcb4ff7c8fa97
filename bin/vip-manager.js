#!/usr/bin/env node
// Thin launcher so the package's `bin` works from a checkout and from an install alike.
import { main } from '../dist/src/main.js';
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
