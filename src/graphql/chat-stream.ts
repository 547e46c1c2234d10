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
  const it: AsyncIterableIterator<unknown> = {
    next: () => inner.next(),
    return: (value?: unknown) => {
      ac.abort(new Error('subscription ended by the client'));
      ctx.signal.removeEventListener('abort', onOuter);
      return inner.return(value as never);
    },
    throw: (e?: unknown) => {
      ac.abort(e);
      return inner.throw(e);
    },
    [Symbol.asyncIterator]() {
      return it;
    },
  };
  return it;
}
