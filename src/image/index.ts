export { parseReference, familiarizeName, familiarStoredName, splitStoredName, type Reference } from './reference.js';
export { pullImage, findImage, findImages, imageSize, removeImage, tagImage, verifyImage } from './images.js';
export { parsePlatform, formatPlatform, hostPlatform, selectPlatform } from './platform.js';
