/**
 * Jest: TypeScript through ts-jest (transpile only; `npm test` type-checks src, test, bench and
 * examples with tsc -p tsconfig.test.json first). `jose` ships only ES modules, which Jest's
 * CommonJS runtime cannot require on every supported Node, so ts-jest turns its files into
 * CommonJS too (the built gateway requires it natively). So does puppeteer-core (the browser
 * tests, test/helpers/browser.ts) with its ES-module dependencies @puppeteer/browsers and
 * chromium-bidi: Jest's own require(esm) needs node --experimental-vm-modules.
 */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { diagnostics: false }],
    '/node_modules/(jose|puppeteer-core|@puppeteer/browsers|chromium-bidi)/.+\\.js$': [
      'ts-jest',
      { diagnostics: false, tsconfig: { allowJs: true, module: 'commonjs' } },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!(jose|puppeteer-core|@puppeteer/browsers|chromium-bidi)/)'],
  testTimeout: 30000,
  maxWorkers: 2,
};
