import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { makeExecutableSchema } from '@graphql-tools/schema';
import type { GraphQLSchema } from 'graphql';
import { resolvers } from './resolvers';
import { frontendResolvers } from './frontend-resolvers';
import { alertResolvers } from './alert-resolvers';
import { keyResolvers } from './key-resolvers';
import { accessResolvers } from './access-resolvers';
import { PROJECT_ROOT } from '../infra/project-root';

const SCHEMA_DIR = path.join(PROJECT_ROOT, 'src/graphql/schema');

/** The SDL files, as codegen reads them. */
function loadTypeDefs(): string[] {
  return readdirSync(SCHEMA_DIR)
    .filter((f) => f.endsWith('.graphql'))
    .sort()
    .map((f) => readFileSync(path.join(SCHEMA_DIR, f), 'utf8'));
}

/** One executable schema, shared by HTTP and graphql-ws. */
export function buildSchema(): GraphQLSchema {
  return makeExecutableSchema({ typeDefs: loadTypeDefs(), resolvers: [resolvers, frontendResolvers, alertResolvers, keyResolvers, accessResolvers] as never });
}
