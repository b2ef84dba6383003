// The SQLite driver for this Node.js. better-sqlite3 up to 12 wraps its objects in node::ObjectWrap,
// whose destructor asserts on Node 24 when a statement is collected while no JavaScript context is
// entered — the process aborts (WiseLibs/better-sqlite3#1515, closed without a fix). 13.x is
// built on Node-API and does not, but needs Node 22 (on 20 it crashes). So: 13 on Node ≥ 22, 12
// on Node 20; the API sluice uses is the same in both.
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

const require = createRequire(import.meta.url);
const major = Number(process.versions.node.split('.')[0]);

export type SqliteDatabase = BetterSqlite3.Database;
export type SqliteStatement = BetterSqlite3.Statement;

/** The better-sqlite3 Database constructor for this Node.js (see above). */
export const Database = (major >= 22 ? require('better-sqlite3-napi') : require('better-sqlite3')) as typeof BetterSqlite3;
