export * from './types.js';
export { openSqliteStore, SqliteKeyStore, type SqliteStoreOptions } from './sqlite.js';
export { LATEST_SCHEMA_VERSION, type Migration } from './migrations.js';
export { AttributeEncodingError, decodeAttributes, encodeAttributes } from './attributes.js';
