import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * The repository root (the folder with package.json), found from this file whether it runs from src/ (tsx, jest)
 * or from the bundle in dist/ (npm start). Files read at run time (the SDL, the playground's assets, the migration
 * runner) are addressed from here, so both layouts read the same files.
 */
export const PROJECT_ROOT = findRoot(__dirname);

function findRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json in ${from} or above`);
  }
}
