/**
 * Pure functions over the stack dependency graph of one synthesized app.
 * `dependencies` of a stack name the stacks it reads from (CDKTF's manifest).
 */
export interface StackNode {
  readonly name: string;
  readonly dependencies: readonly string[];
}

/** Every stack that depends on one of `roots`, directly or not (roots excluded). */
export function dependentsOf(stacks: readonly StackNode[], roots: ReadonlySet<string>): Set<string> {
  const dependents = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const stack of stacks) {
      if (roots.has(stack.name) || dependents.has(stack.name)) continue;
      if (stack.dependencies.some((dependency) => roots.has(dependency) || dependents.has(dependency))) {
        dependents.add(stack.name);
        grew = true;
      }
    }
  }
  return dependents;
}

/** Every stack `name` depends on, directly or not. */
export function ancestorsOf(stacks: readonly StackNode[], name: string): Set<string> {
  const byName = new Map(stacks.map((stack) => [stack.name, stack]));
  const ancestors = new Set<string>();
  const visit = (current: string) => {
    for (const dependency of byName.get(current)?.dependencies ?? []) {
      if (!ancestors.has(dependency)) {
        ancestors.add(dependency);
        visit(dependency);
      }
    }
  };
  visit(name);
  return ancestors;
}

/** Stacks ordered so that each comes after all of its dependencies; ties by name. */
export function dependencyOrder<T extends StackNode>(stacks: readonly T[]): T[] {
  const remaining = new Map(stacks.map((stack) => [stack.name, stack]));
  const ordered: T[] = [];
  while (remaining.size > 0) {
    const ready = [...remaining.values()]
      .filter((stack) => stack.dependencies.every((dependency) => !remaining.has(dependency)))
      .sort((a, b) => a.name.localeCompare(b.name));
    if (ready.length === 0) {
      throw new Error(`dependency cycle among stacks: ${[...remaining.keys()].join(", ")}`);
    }
    for (const stack of ready) {
      ordered.push(stack);
      remaining.delete(stack.name);
    }
  }
  return ordered;
}

/**
 * Runs `work` for each stack once all its dependencies have finished, at most
 * `parallelism` at a time. A stack whose dependency did not succeed is not run:
 * `skip` gives its result instead, naming the dependency. `work` reports
 * failures in its result; if it throws, the run stops and the error is raised.
 */
export async function runInDependencyOrder<T extends StackNode, R>(
  stacks: readonly T[],
  parallelism: number,
  work: (stack: T) => Promise<R>,
  succeeded: (result: R) => boolean,
  skip: (stack: T, failedDependency: string, dependencyResult: R) => R,
): Promise<Map<string, R>> {
  const order = dependencyOrder(stacks);
  const names = new Set(order.map((stack) => stack.name));
  const results = new Map<string, R>();
  const running = new Map<string, Promise<void>>();

  const blockerOf = (stack: T) =>
    stack.dependencies.find((dependency) => {
      if (!names.has(dependency)) return false;
      const result = results.get(dependency);
      return result !== undefined && !succeeded(result);
    });
  const isReady = (stack: T) =>
    stack.dependencies.every((dependency) => !names.has(dependency) || results.has(dependency));

  let thrown: { error: unknown } | undefined;
  while (results.size < order.length) {
    if (thrown) throw thrown.error;
    let started = false;
    for (const stack of order) {
      if (results.has(stack.name) || running.has(stack.name) || !isReady(stack)) continue;
      const blocker = blockerOf(stack);
      if (blocker !== undefined) {
        results.set(stack.name, skip(stack, blocker, results.get(blocker) as R));
        started = true;
        continue;
      }
      if (running.size >= parallelism) break;
      running.set(
        stack.name,
        work(stack).then(
          (result) => {
            results.set(stack.name, result);
            running.delete(stack.name);
          },
          (error: unknown) => {
            thrown = { error };
            running.delete(stack.name);
          },
        ),
      );
      started = true;
    }
    if (!started && running.size > 0) await Promise.race(running.values());
    else if (!started) throw new Error("no stack can start: the dependency graph is inconsistent");
  }
  if (thrown) throw thrown.error;
  return results;
}

/** Runs `work` for every item, at most `parallelism` at a time; results keep the items' order. */
export async function inParallel<T, R>(
  items: readonly T[],
  parallelism: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallelism, items.length) }, lane));
  return results;
}
