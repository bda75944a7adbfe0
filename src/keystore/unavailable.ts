/**
 * The keystore's database cannot be reached right now (connection refused or lost, the server
 * shutting down or starting up, a connect timeout). The write or read was not done, or, for a
 * write whose COMMIT was cut off, its outcome is unknown: it was not acknowledged either way.
 *
 * Backends that talk to a database server (PostgreSQL) throw it; the server answers the request
 * with a KMIP error asking the client to retry, and the backend reconnects by itself.
 */
export class KeyStoreUnavailableError extends Error {
  override readonly name = 'KeyStoreUnavailableError';
}
