export interface RuntimeInfo {
  /** Version of the native addon. */
  addonVersion: string
  /**
   * Process-unique id of this instance of the addon. The main thread, each worker, and each load
   * after a `require.cache` reset is its own instance with its own native state.
   */
  instanceId: number
  /** Instances alive in the process (their thread's environment has not shut down). */
  liveInstances: number
}

/** Facts about this instance of the native addon. */
export declare function runtimeInfo(): RuntimeInfo
