import { makeExecutableSchema } from '@graphql-tools/schema';
import { makeDocumentCache } from '../../src/server/document-cache';

const schema = makeExecutableSchema({ typeDefs: 'type Query { hello: String, n(i: Int): Int }' });

describe('the document cache of the streaming transports', () => {
  it('is bounded in bytes: 300 distinct 1 MB documents (comment-padded, few tokens) keep nothing', () => {
    const cache = makeDocumentCache({ schema, validationRules: [], production: false });
    const pad = '#'.repeat(1024 * 1024);
    for (let i = 0; i < 300; i++) {
      const r = cache.check(`${pad}\n{ n(i: ${i}) }`);
      expect('document' in r && r.errors).toEqual([]);
    }
    expect(cache.size).toBe(0);
    expect(cache.bytes).toBe(0);
  });

  it('keeps at most maxBytes of query text, evicting the least recently used', () => {
    const cache = makeDocumentCache({ schema, validationRules: [], production: false, maxBytes: 10_000, maxEntryBytes: 5_000 });
    const doc = (i: number) => `{ n(i: ${i}) }${' '.repeat(1000)}`;
    for (let i = 0; i < 100; i++) cache.check(doc(i));
    expect(cache.bytes).toBeLessThanOrEqual(10_000);
    expect(cache.size).toBeGreaterThan(5);
    // A hit moves a document to the back: the oldest survivors are evicted before it.
    const keep = doc(95);
    const before = cache.check(keep);
    for (let i = 100; i < 108; i++) cache.check(doc(i));
    expect(cache.check(keep)).toBe(before);
  });

  it('reports parse failures and validation errors with the codes Apollo uses on HTTP', () => {
    const cache = makeDocumentCache({ schema, validationRules: [], production: false });
    expect(cache.check('{ hello')).toEqual({ parseError: expect.stringMatching(/Syntax Error/) });
    const r = cache.check('{ nope }');
    expect('errors' in r && r.errors.map((e) => e.extensions.code)).toEqual(['GRAPHQL_VALIDATION_FAILED']);
  });
});
