// Objective name → priority: InferenceObjective resources (watched) over the static `flowControl.objectives`.
// Names come from the cluster or the config, never from clients, so the map is bounded by what operators
// create; a request naming an unknown objective gets the default priority.

export class ObjectivePriorities {
  readonly #static: ReadonlyMap<string, number>;
  readonly #watched = new Map<string, number>();

  constructor(staticObjectives: Readonly<Record<string, number>> = {}) {
    this.#static = new Map(Object.entries(staticObjectives));
  }

  /** Priority of `name`, or null when no objective of that name is known. */
  priorityOf(name: string): number | null {
    return this.#watched.get(name) ?? this.#static.get(name) ?? null;
  }

  /** A watched InferenceObjective appeared or changed (`spec.priority`; absent = 0, as GIE). */
  set(name: string, priority: number): void {
    this.#watched.set(name, priority);
  }

  delete(name: string): void {
    this.#watched.delete(name);
  }

  /** The watched set was re-listed: replace it. */
  replaceAll(entries: Iterable<readonly [string, number]>): void {
    this.#watched.clear();
    for (const [k, v] of entries) this.#watched.set(k, v);
  }

  get size(): number {
    return this.#watched.size;
  }
}
