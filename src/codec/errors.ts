/**
 * The error an operation (or the codec reading its payload) throws to answer a batch item with
 * Result Status Operation Failed. `reason` is the normalised Result Reason name from the
 * dictionary (e.g. 'ItemNotFound'); `message` is what the client reads in Result Message, so it
 * must never hold key material or internal details.
 */
export class KmipError extends Error {
  override readonly name = 'KmipError';
  constructor(
    readonly reason: ResultReasonName,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Result Reasons used by kmipd. 1.x clients get the nearest 1.x reason (see
 * `reasonForVersion` in the server's error mapping) when a reason is 2.x-only.
 */
export type ResultReasonName =
  | 'ItemNotFound'
  | 'ResponseTooLarge'
  | 'AuthenticationNotSuccessful'
  | 'InvalidMessage'
  | 'OperationNotSupported'
  | 'MissingData'
  | 'InvalidField'
  | 'FeatureNotSupported'
  | 'OperationCanceledByRequester'
  | 'CryptographicFailure'
  | 'IllegalOperation'
  | 'PermissionDenied'
  | 'ObjectArchived'
  | 'IndexOutOfBounds'
  | 'ApplicationNamespaceNotSupported'
  | 'KeyFormatTypeNotSupported'
  | 'KeyCompressionTypeNotSupported'
  | 'EncodingOptionError'
  | 'KeyValueNotPresent'
  | 'AttestationRequired'
  | 'AttestationFailed'
  | 'Sensitive'
  | 'NotExtractable'
  | 'ObjectAlreadyExists'
  | 'InvalidTicket'
  | 'UsageLimitExceeded'
  | 'NumericRange'
  | 'InvalidDataType'
  | 'ReadOnlyAttribute'
  | 'MultiValuedAttribute'
  | 'UnsupportedAttribute'
  | 'AttributeInstanceNotFound'
  | 'AttributeNotFound'
  | 'AttributeReadOnly'
  | 'AttributeSingleValued'
  | 'BadCryptographicParameters'
  | 'BadPassword'
  | 'CodecError'
  | 'IllegalObjectType'
  | 'IncompatibleCryptographicUsageMask'
  | 'InternalServerError'
  | 'InvalidAsynchronousCorrelationValue'
  | 'InvalidAttribute'
  | 'InvalidAttributeValue'
  | 'InvalidCorrelationValue'
  | 'InvalidCSR'
  | 'InvalidObjectType'
  | 'KeyWrapTypeNotSupported'
  | 'MissingInitializationVector'
  | 'NonUniqueNameAttribute'
  | 'ObjectDestroyed'
  | 'ObjectNotFound'
  | 'NotAuthorised'
  | 'ServerLimitExceeded'
  | 'UnknownEnumeration'
  | 'UnknownMessageExtension'
  | 'UnknownTag'
  | 'UnsupportedCryptographicParameters'
  | 'UnsupportedProtocolVersion'
  | 'WrongKeyLifecycleState'
  | 'ConstraintViolation'
  | 'GeneralFailure';

/**
 * For a 1.x client, the 1.x reason closest to a 2.x-only one. Reasons not listed map to
 * General Failure when the client's version lacks them.
 */
export const REASON_1X_FALLBACK: Partial<Record<ResultReasonName, ResultReasonName>> = {
  AttributeNotFound: 'ItemNotFound',
  AttributeInstanceNotFound: 'ItemNotFound',
  ObjectNotFound: 'ItemNotFound',
  ObjectDestroyed: 'ItemNotFound',
  InvalidAttribute: 'InvalidField',
  InvalidAttributeValue: 'InvalidField',
  InvalidDataType: 'InvalidField',
  UnknownEnumeration: 'InvalidField',
  UnknownTag: 'InvalidField',
  NumericRange: 'InvalidField',
  CodecError: 'InvalidMessage',
  ReadOnlyAttribute: 'PermissionDenied',
  AttributeReadOnly: 'PermissionDenied',
  AttributeSingleValued: 'IndexOutOfBounds',
  MultiValuedAttribute: 'InvalidField',
  UnsupportedAttribute: 'InvalidField',
  WrongKeyLifecycleState: 'PermissionDenied',
  NotAuthorised: 'PermissionDenied',
  IllegalObjectType: 'IllegalOperation',
  InvalidObjectType: 'InvalidField',
  BadCryptographicParameters: 'CryptographicFailure',
  UnsupportedCryptographicParameters: 'CryptographicFailure',
  IncompatibleCryptographicUsageMask: 'PermissionDenied',
  MissingInitializationVector: 'MissingData',
  KeyWrapTypeNotSupported: 'FeatureNotSupported',
  UnsupportedProtocolVersion: 'InvalidMessage',
  InternalServerError: 'GeneralFailure',
  ServerLimitExceeded: 'GeneralFailure',
  NonUniqueNameAttribute: 'InvalidField',
  InvalidCSR: 'InvalidField',
  BadPassword: 'AuthenticationNotSuccessful',
  // 1.4's reason; 1.0-1.3 have no closer one (Put of an identifier that exists).
  ObjectAlreadyExists: 'IllegalOperation',
  InvalidAsynchronousCorrelationValue: 'ItemNotFound',
};
