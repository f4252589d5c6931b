// The ES module entry of linux-obs (`import` in Node.js resolves here through `exports`): the
// CommonJS build's named exports, and as default its whole `module.exports`, as Node.js itself
// gives for a CommonJS package. Both entries share one module instance, so `instanceof ObsError`
// and the observers are the same whichever way the library was loaded.
export * from '../dist/src/index.js'
export { default } from '../dist/src/index.js'
