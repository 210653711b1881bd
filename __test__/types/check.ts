// Type assertions for the usage files. Nothing here runs: the files are only type-checked.

/** True when A and B are the same type (not merely assignable; `any` equals only `any`). */
export type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** `expectTypeOf(value).toBe<T>()` compiles only when `value`'s type is exactly T. */
export declare function expectTypeOf<Actual>(value: Actual): {
  toBe<Expected>(...mismatch: Equal<Actual, Expected> extends true ? [] : [expected: Expected, actual: Actual]): void;
};

/** A value of any type, for arguments whose value does not matter. */
export declare function any<T>(): T;
