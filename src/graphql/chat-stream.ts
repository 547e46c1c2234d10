import type { GraphQLContext } from './context';
import type { ChatInput } from '../chat/chat-input';

/**
 * chatStream's subscribe. graphql-ws ends a subscription by calling return() on its iterator, and an async
 * generator's return() waits for a pending await (here: the next upstream chunk). So the iterator returned here
 * aborts the request's signal first, which stops the upstream call at once; the generator then settles and ends.
 */
export function chatStreamResolver(_parent: unknown, args: { input: ChatInput }, ctx: GraphQLContext): AsyncIterableIterator<unknown> {
  const ac = new AbortController();
  const onOuter = () => ac.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', onOuter, { once: true });
  const inner = ctx.services.chat.stream(ctx.principal, args.input, ac.signal);
  // The connection's signal outlives this subscription: its listener goes when the stream ends, however it ends.
  const detach = () => ctx.signal.removeEventListener('abort', onOuter);
  const it: AsyncIterableIterator<unknown> = {
    next: async () => {
      try {
        const r = await inner.next();
        if (r.done) detach();
        return r;
      } catch (e) {
        detach();
        throw e;
      }
    },
    return: (value?: unknown) => {
      ac.abort(new Error('subscription ended by the client'));
      detach();
      return inner.return(value as never);
    },
    throw: (e?: unknown) => {
      ac.abort(e);
      detach();
      return inner.throw(e);
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}
