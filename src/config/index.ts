/** kmipd's configuration: settings and their precedence, the manifest's keys, secrets, durations. */
export { ADMIN_PORT, ConfigError, DEFAULT_ADMIN_CLIENT, LOG_LEVELS, SETTINGS, resolveSettings, settingValue, unknownEnv } from './settings.js';
export type { LogLevel, Resolved, ResolveInput, ServerSettings, SettingSpec, Source } from './settings.js';
export { KNOWN_KEYS, readRawManifest, redactManifest, unknownManifestKeys, type RawManifest } from './manifest.js';
export { SECRETS, checkSecretFile, exportSecrets, locateSecret, readSecretFile, type SecretLocation, type SecretSource, type SecretSpec } from './secrets.js';
export { DEFAULT_DATA_DIR, checkConfig, defaultDataDir, loadServerConfig, type ConfigReport, type LoadedConfig } from './load.js';
export { DurationError, formatDuration, parseDuration } from './duration.js';
export { addSettingFlags, typedFlags } from './flags.js';
