#version 130
attribute vec3 a_position;  // world
attribute vec4 a_color;
uniform mat4 u_viewmat;     // world -> OpenCV camera
uniform mat4 u_cam_to_clip; // app/viewer/gl_camera.py
varying vec4 v_color;
void main() {
    gl_Position = u_cam_to_clip * (u_viewmat * vec4(a_position, 1.0));
    v_color = a_color;
}
