import {
  GraphQLError,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLSchema,
  type ValidationRule,
} from 'graphql';

/** Most lexical tokens a document may have, on every transport. */
export const MAX_DOCUMENT_TOKENS = 2000;

export type CheckedDocument = { readonly document: DocumentNode; readonly errors: readonly GraphQLError[] } | { readonly parseError: string };

export interface DocumentCacheOptions {
  readonly schema: GraphQLSchema;
  /** graphql-armor's rules (the same ones Apollo applies on HTTP). */
  readonly validationRules: readonly ValidationRule[];
  readonly production: boolean;
  /** Total query-text bytes kept; the least recently used documents go first. */
  readonly maxBytes?: number;
  /** A document longer than this is checked every time and never kept. */
  readonly maxEntryBytes?: number;
}

/**
 * Parsed and validated documents by query text, for the transports Apollo's own document store does not cover
 * (graphql-ws, SSE, multipart): a frontend subscribes with the same few documents over and over, and validation
 * (armor's cost and depth rules included) is not free.
 *
 * Bounded in bytes, not entries: a client can send 1 MB documents (mostly comments, which the token limit does not
 * count), and a thousand of those would be a gigabyte. The parsed AST is about proportional to the text, so the
 * text's length is the budget. Callers check a document only after the request is authenticated.
 */
export function makeDocumentCache(o: DocumentCacheOptions) {
  const maxBytes = o.maxBytes ?? 4 * 1024 * 1024;
  const maxEntryBytes = o.maxEntryBytes ?? 64 * 1024;
  const rules = [...specifiedRules, ...o.validationRules, ...(o.production ? [NoSchemaIntrospectionCustomRule] : [])];
  // A Map iterates in insertion order: re-inserting on a hit makes the first key the least recently used.
  const entries = new Map<string, { document: DocumentNode; errors: readonly GraphQLError[] }>();
  let bytes = 0;

  const check = (query: string): CheckedDocument => {
    const hit = entries.get(query);
    if (hit) {
      entries.delete(query);
      entries.set(query, hit);
      return hit;
    }
    let document: DocumentNode;
    try {
      document = parse(query, { maxTokens: MAX_DOCUMENT_TOKENS });
    } catch (e) {
      return { parseError: (e as Error).message };
    }
    // The same code Apollo gives these on HTTP (graphql-armor reports its own as BAD_USER_INPUT).
    const errors = validate(o.schema, document, rules, { hideSuggestions: o.production }).map(
      (e) => new GraphQLError(e.message, { nodes: e.nodes, extensions: { ...e.extensions, code: 'GRAPHQL_VALIDATION_FAILED' } }),
    );
    const entry = { document, errors };
    if (query.length <= maxEntryBytes) {
      entries.set(query, entry);
      bytes += query.length;
      for (const [k] of entries) {
        if (bytes <= maxBytes) break;
        entries.delete(k);
        bytes -= k.length;
      }
    }
    return entry;
  };

  return {
    check,
    /** Query-text bytes held now (tests and metrics). */
    get bytes() {
      return bytes;
    },
    get size() {
      return entries.size;
    },
  };
}

export type DocumentCache = ReturnType<typeof makeDocumentCache>;
