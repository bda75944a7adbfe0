/**
 * Set Endpoint Role (KMIP 2.0/2.1 "Set Endpoint Role"): a peer tells the server which role it
 * takes on this connection, Client or Server, for the exchanges where a KMIP server sends
 * requests to an endpoint that acts as a server (server-to-client operations).
 *
 * Request: Endpoint Role. Response: Endpoint Role, the role the server has accepted.
 *
 * kmipd never sends requests to the endpoints that connect to it: every peer is a client, which
 * is the role every connection already has. Client is accepted and answered as such; Server
 * cannot be served (Feature Not Supported): kmipd would never act on it, and saying yes would
 * tell the peer to wait for requests that do not come. Nothing is stored.
 */
import { KmipError } from '../codec/errors.js';
import { reqValue } from '../codec/node.js';
import { Enums, Tag, enumValueName } from '../spec/index.js';
import { T, type StructureNode, type TtlvNode } from '../ttlv/types.js';
import type { OperationContext, OperationHandler } from './context.js';

export const setEndpointRoleHandler: OperationHandler = {
  operation: Enums.Operation.SetEndpointRole,
  name: 'SetEndpointRole',
  since: '2.0',
  async handle(_ctx: OperationContext, payload: StructureNode): Promise<TtlvNode[]> {
    const role = reqValue(payload, Tag.EndpointRole, 'Enumeration');
    if (role === Enums.EndpointRole.Client) return [T.enum(Tag.EndpointRole, role)];
    if (role === Enums.EndpointRole.Server) {
      throw new KmipError('FeatureNotSupported', 'kmipd does not send requests to the endpoints connected to it; the Server endpoint role is not supported');
    }
    throw new KmipError('InvalidField', `unknown Endpoint Role ${enumValueName('EndpointRole', role) ?? role}`);
  },
};
