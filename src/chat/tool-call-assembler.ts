import type { ToolCall, ToolCallDelta } from '../upstream/types';

/**
 * Rebuilds whole tool calls from streamed pieces, the way OpenAI clients do: pieces with the same index belong to
 * one call; the id and name come from the first piece that has them, the arguments are the pieces' text in order.
 * A cut stream leaves a call with the arguments delivered so far.
 */
export class ToolCallAssembler {
  private byIndex = new Map<number, { id: string; name: string; arguments: string }>();

  add(deltas: readonly ToolCallDelta[]): void {
    for (const d of deltas) {
      const call = this.byIndex.get(d.index) ?? { id: '', name: '', arguments: '' };
      if (call.id === '' && d.id !== undefined) call.id = d.id;
      if (call.name === '' && d.name !== undefined) call.name = d.name;
      if (d.argumentsDelta !== undefined) call.arguments += d.argumentsDelta;
      this.byIndex.set(d.index, call);
    }
  }

  /** Forgets every call (collect mode: the attempt that produced them failed and another model answers). */
  reset(): void {
    this.byIndex = new Map();
  }

  /** The calls in index order. */
  calls(): ToolCall[] {
    return [...this.byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => ({ ...c }));
  }
}
