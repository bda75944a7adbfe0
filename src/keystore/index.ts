export * from './types.js';
export { openSqliteStore, SqliteKeyStore, type SqliteStoreOptions } from './sqlite.js';
export { LATEST_SCHEMA_VERSION, type Migration } from './migrations.js';
export { AttributeEncodingError, decodeAttributes, encodeAttributes } from './attributes.js';
export { KeyStoreUnavailableError } from './unavailable.js';
// PostgreSQL: import '../keystore/postgres.js' where needed (it loads the pg driver).
export type { PostgresKeyStore, PostgresStoreOptions } from './postgres.js';
