// scripts/setup.sh on a fresh Debian 13 (trixie): see fresh-setup.ts.
import { freshSetupSuite } from './fresh-setup.js';

freshSetupSuite('trixie');
