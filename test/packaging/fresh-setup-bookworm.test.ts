// scripts/setup.sh on a fresh Debian 12 (bookworm): see fresh-setup.ts.
import { freshSetupSuite } from './fresh-setup.js';

freshSetupSuite('bookworm');
